"""CONCATENATION (the concat kind, printed from kernel_params): axes, negative axes, inputs on
other grids (requantized first), against LiteRT / TFLite Micro and on every target."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import loops
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16

VALID_ATTRS = [{"axis": 3}, {"axis": -1}]
Q = {"scale": 0.05, "zero_point": -7}

# name -> (input shapes, axis, per input its quantization (None: the output's))
CASES = {
    "channels": ([(1, 3, 4, 2), (1, 3, 4, 5)], 3, None),
    "rows_three": ([(1, 2, 4, 3), (1, 1, 4, 3), (1, 3, 4, 3)], 1, None),
    "negative_axis": ([(2, 3, 4), (2, 3, 1)], -1, None),
    "batch_r2": ([(2, 5), (3, 5)], 0, None),
    "r1": ([(4,), (3,), (1,)], 0, None),
    "requantized": ([(1, 3, 3, 2), (1, 3, 3, 4)], 3, [{"scale": 0.11, "zero_point": 5}, None]),
    "requantized_both": ([(2, 4), (2, 3)], -1, [{"scale": 0.02, "zero_point": -100},
                                                    {"scale": 0.07, "zero_point": 30}]),
}
TFLM = ["channels", "negative_axis"]


def concat_model(shapes, axis, quants=None, activation="NONE", out_shape=None):
    m = ModelBuilder()
    xs = [m.tensor(f"x{k}", s, "int8", **((quants or [None] * len(shapes))[k] or Q)) for k, s in enumerate(shapes)]
    if out_shape is None:
        out_shape = np.concatenate([np.zeros(s) for s in shapes], axis=axis).shape
    y = m.tensor("y", out_shape, "int8", **Q)
    m.op("CONCATENATION", xs, [y], axis=axis, fusedActivationFunction=activation)
    return m, xs, y


def case(name: str) -> Case:
    m, xs, y = concat_model(*CASES[name])
    return Case(m, xs, [y], n=3, seed=59)


SAME_GRID = [name for name, (_, _, quants) in CASES.items() if quants is None]
REQUANTIZED = [name for name in CASES if name not in SAME_GRID]


def requantized_twin(shapes, axis, quants) -> tuple[ModelBuilder, list[int], int]:
    """The model LiteRT and TFLM do run for int8 inputs on other grids (both refuse the direct one,
    concatenation.cc: "t->params.scale != output->params.scale"): QUANTIZE each onto the output's
    grid, then CONCATENATION; dmxgen lowers the direct one to exactly these ops."""
    m = ModelBuilder()
    xs, moved = [], []
    for k, (s, q) in enumerate(zip(shapes, quants)):
        xs.append(m.tensor(f"x{k}", s, "int8", **(q or Q)))
        if q is None:
            moved.append(xs[-1])
            continue
        moved.append(m.tensor(f"x{k}_on_output_grid", s, "int8", **Q))
        m.op("QUANTIZE", [xs[-1]], [moved[-1]])
    y = m.tensor("y", np.concatenate([np.zeros(s) for s in shapes], axis=axis).shape, "int8", **Q)
    m.op("CONCATENATION", moved, [y], axis=axis, fusedActivationFunction="NONE")
    return m, xs, y


@pytest.mark.parametrize("name", SAME_GRID)
def test_concatenation_matches_tflite(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflite",))
    c = case(name)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "again"))
    quants = CASES[name][2] or []
    assert [op.kind for op in g.ops] == ["requantize"] * sum(q is not None for q in quants) + ["concat"]
    assert g.ops[-1].name == "concat_0" and g.ops[-1].a.axis == CASES[name][1] % len(CASES[name][0][0])


@pytest.mark.parametrize("name", REQUANTIZED)
@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_inputs_on_other_grids_match_quantize_then_concatenation(tmp_path, name, golden):
    from dmxgen import reference
    from dmxgen.goldens import run_golden

    from ._harness import case_sets

    c = case(name)
    direct = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "direct"), semantics=golden)
    tm, txs, ty = requantized_twin(*CASES[name])
    twin = save(tm, tmp_path, txs, [ty], "twin")
    for k, inputs in enumerate(case_sets(c, direct)):
        mine = reference.run(direct, inputs)[direct.outputs[0]]
        gold = run_golden(twin, inputs, golden)[0]
        assert mine.shape == gold.shape and mine.tobytes() == gold.tobytes(), f"input set {k}"


@pytest.mark.parametrize("name", [n for n in TFLM if n in SAME_GRID])
def test_concatenation_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("concat"))
def test_concatenation_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=TFLM[:1])


def test_concat_walks_place_each_input_after_the_ones_before():
    walks = loops.concat([(1, 3, 4, 2), (1, 3, 4, 5)], 3)
    assert [w.offsets for w in walks] == [(0, 0), (0, 2)]
    assert [w.strides[1][-1] for w in walks] == [1, 1] and walks[0].strides[1][-2] == 7


@pytest.mark.parametrize("shapes, axis, activation, out_shape, message", [
    ([(2, 3), (2, 4)], 1, "RELU", None, r"fused activation RELU is not supported \(only NONE\)"),
    ([(2, 3), (2, 4)], 2, "NONE", (2, 7), r"axis 2 is outside \[-2, 2\)"),
    ([(2, 3), (2, 4)], 1, "NONE", (2, 8), r"input sizes along axis 1 do not add up to the output's 8"),
])
def test_concatenation_refusals(tmp_path, shapes, axis, activation, out_shape, message):
    m, xs, y = concat_model(shapes, axis, activation=activation, out_shape=out_shape)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, xs, [y]))


# -- int16 codes (TFLite's 16x8 scheme: the same model with int16 activations, zero point 0) -------------
def case16(name: str) -> Case:
    m, xs, y = concat_model(*CASES[name])
    return Case(m.to_int16(), xs, [y], n=3, seed=60)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", SAME_GRID)
def test_concatenation_int16(tmp_path, name, golden):
    assert check_case(case16(name), tmp_path, goldens=(golden,)).dtype == np.int16


@pytest.mark.parametrize("target", targets16("concat"))
def test_concatenation_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in SAME_GRID})
