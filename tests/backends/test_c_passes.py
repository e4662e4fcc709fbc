"""The float REDUCE_MAX lowering: same outputs as the unlowered graph, and no float left in the C."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.vectors import random_inputs
from dmxgen.frontends.tflite import load_tflite
from dmxgen.passes import lower
from dmxgen.testing.tflite_builder import ModelBuilder
from tests.backends.conftest import assert_bit_exact, export_verify, extremes, needs_gcc, save

pytestmark = needs_gcc
from tests.conftest import shared_or_skip


def global_max_model(tmp_path, out_scale, out_zp):
    """int8 -> DEQUANTIZE -> float REDUCE_MAX over H, W -> QUANTIZE (another scale) -> ADD."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 3, 4, 6], scale=0.05, zero_point=-7)
    f = m.tensor("f", [1, 3, 4, 6], "float32")
    m.op("DEQUANTIZE", [x], [f])
    ax = m.tensor("axes", [2], "int32", data=[1, 2])
    r = m.tensor("r", [1, 6], "float32")
    m.op("REDUCE_MAX", [f, ax], [r], keepDims=False)
    q = m.tensor("q", [1, 6], scale=out_scale, zero_point=out_zp)
    m.op("QUANTIZE", [r], [q])
    c = m.tensor("c", [6], scale=0.02, zero_point=0, data=[1, -50, 3, 100, -128, 127])
    y = m.tensor("y", [1, 6], scale=0.1, zero_point=2)
    m.op("ADD", [q, c], [y], fusedActivationFunction="NONE")
    return save(tmp_path, "gmax", m, [x], [y])


def test_lowering_with_a_table(tmp_path):
    model = global_max_model(tmp_path, out_scale=0.11, out_zp=30)
    graph = load_tflite(model)
    lowered = lower(graph)
    kinds = [op.kind for op in lowered.ops]
    assert kinds == ["reduce_max", "lut", "add"]
    assert all(t.dtype != "float32" for n, t in lowered.tensors.items() if not t.is_const)
    table = lowered.ops[1].attrs["table"]
    assert len(np.unique(table)) < 256  # a real requantization, not the identity
    for s in random_inputs(graph, 16, 1):
        np.testing.assert_array_equal(reference.run(graph, s)["y"], reference.run(lowered, s)["y"])
    manifest, result = export_verify(model, tmp_path / "out", input_files=[extremes(tmp_path, (1, 3, 4, 6))])
    assert_bit_exact(result)
    assert manifest["passes"] == ["lower_float_reduce_max"]
    assert [layer["op"] for layer in manifest["layers"]] == kinds


def test_identity_table_drops_the_lut(tmp_path):
    model = global_max_model(tmp_path, out_scale=0.05, out_zp=-7)
    assert [op.kind for op in lower(load_tflite(model)).ops] == ["reduce_max", "add"]


def test_lowering_leaves_other_graphs_alone(small_model):
    graph = load_tflite(small_model)
    applied: list[str] = []
    assert [id(o) for o in lower(graph, applied).ops] == [id(o) for o in graph.ops] and applied == []


@pytest.mark.shared
def test_mobilenetv2_lowering_matches_unlowered_reference():
    graph = load_tflite(shared_or_skip("dcsr/mobilenetv2_cifar10_dense50.tflite"))
    lowered = lower(graph)
    assert "dequantize" in [op.kind for op in graph.ops[1:-1]]
    assert [op.kind for op in lowered.ops[1:-1]].count("dequantize") == 0
    for s in random_inputs(graph, 4, 7):
        want = reference.run(graph, s, keep=True)
        got = reference.run(lowered, s, keep=True)
        np.testing.assert_array_equal(want[graph.outputs[0]], got[graph.outputs[0]])
        shared = [op.outputs[0] for op in lowered.ops if op.outputs[0] in want]
        assert len(shared) >= len(lowered.ops) - 1
        for name in shared:
            np.testing.assert_array_equal(want[name], got[name])
