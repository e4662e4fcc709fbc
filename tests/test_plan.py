"""The static memory plan: no two live tensors share bytes (checked by brute force), memory is reused,
reshapes alias, elementwise ops work in place only on inputs that die there."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph, Op, Tensor
from dmxgen.passes import lower
from dmxgen.plan import plan_memory
from dmxgen.testing.tflite_builder import small_cnn
from tests.conftest import shared_models


def lifetimes(g: Graph) -> dict[str, tuple[int, int]]:
    """Independently of the planner: (index of the writing op, index of the last reading op)."""
    life = {n: (-1, -1) for n in g.inputs}
    for i, op in enumerate(g.ops):
        for n in op.outputs:
            life[n] = (i, i)
    for i, op in enumerate(g.ops):
        for n in op.inputs:
            if n in life:
                life[n] = (life[n][0], max(life[n][1], i))
    for n in g.outputs:
        life[n] = (life[n][0], len(g.ops))
    return life


def check_no_overlap(g: Graph, scratch: dict[int, int] | None = None) -> None:
    plan = plan_memory(g, scratch)
    life = lifetimes(g)
    spans = []  # (name, first, last, lo, hi, buffer)
    for name, (first, last) in life.items():
        assert name in plan.tensor_buffer, name
        if plan.storage(name) == "arena":
            lo = plan.offset(name)
            spans.append((name, first, last, lo, lo + g.tensors[name].nbytes, plan.tensor_buffer[name]))
    for i, b in plan.scratch.items():
        buf = plan.buffers[b]
        spans.append((f"scratch{i}", i, i, buf.offset, buf.offset + buf.size, b))
    for s in spans:
        assert s[3] % plan.alignment == 0 and s[4] <= plan.arena_size
    for a, b in itertools.combinations(spans, 2):
        if a[5] == b[5]:
            continue  # the same buffer on purpose: checked by the in-place rules below
        if a[1] <= b[2] and b[1] <= a[2]:  # alive at the same time
            assert a[4] <= b[3] or b[4] <= a[3], (a, b)
    for i in plan.inplace:  # an input whose bytes the output takes must be dead after the op
        op = g.ops[i]
        shared = [n for n in op.inputs if n and plan.tensor_buffer.get(n) == plan.tensor_buffer[op.outputs[0]]]
        assert shared and all(life[n][1] == i for n in shared)
    assert plan.peak_live_bytes <= plan.arena_size


def t(name, shape, const=False, dtype="int8"):
    return Tensor(name, shape, dtype, data=np.zeros(shape, np.int8) if const else None)


# Complete attrs (an Op checks them when built); the planner reads none of these values.
FC = {"input_offset": 0, "output_offset": 0, "batches": 1, "multiplier": 1 << 30, "shift": 0,
      "activation": "NONE", "act_min": -128, "act_max": 127}
BINARY = {"input1_offset": 0, "input2_offset": 0, "output_offset": 0, "output_multiplier": 1 << 30,
          "output_shift": 0, "activation": "NONE", "act_min": -128, "act_max": 127}
ADD = dict(BINARY, left_shift=20, input1_multiplier=1 << 30, input1_shift=0, input2_multiplier=1 << 30,
           input2_shift=0)
REQUANTIZE = {"input_offset": 0, "output_offset": 0, "multiplier": 1 << 30, "shift": 0}


def graph(tensors, ops, inputs, outputs) -> Graph:
    return Graph({x.name: x for x in tensors}, ops, inputs, outputs)


def chain(n=5, size=100) -> Graph:
    ts = [t(f"t{i}", (size,)) for i in range(n + 1)] + [t("w", (size, size), const=True)]
    ops = [Op(f"fc{i}", "fully_connected", [f"t{i}", "w", ""], [f"t{i + 1}"], FC) for i in range(n)]
    return graph(ts, ops, ["t0"], [f"t{n}"])


def test_chain_reuses_memory():
    g = chain()
    plan = plan_memory(g)
    assert plan.storage("t0") == "input" and plan.storage("t5") == "output"
    assert plan.offset("t1") == plan.offset("t3") and plan.offset("t2") == plan.offset("t4")
    assert plan.arena_size == 2 * 112  # two 100-byte tensors, aligned to 16
    check_no_overlap(g)


def test_residual_keeps_the_skip_alive():
    ts = [t(n, (64,)) for n in ("x", "a", "b", "c", "y")] + [t("w", (64, 64), const=True)]
    ops = [Op("fa", "fully_connected", ["x", "w", ""], ["a"], FC),
           Op("fb", "fully_connected", ["a", "w", ""], ["b"], FC),
           Op("fc", "fully_connected", ["b", "w", ""], ["c"], FC),
           Op("add", "add", ["c", "a"], ["y"], ADD)]
    g = graph(ts, ops, ["x"], ["y"])
    plan = plan_memory(g)
    assert plan.offset("a") != plan.offset("b")
    assert plan.storage("c") == "output" and 3 in plan.inplace  # c dies at the add, which writes the output
    assert plan.arena_size == 2 * 64
    check_no_overlap(g)


def test_in_place_only_on_a_dying_input():
    ts = [t(n, (4, 8)) for n in ("x", "a", "b", "c", "y")] + [t("k", (8,), const=True)]
    ops = [Op("q", "requantize", ["x"], ["a"], REQUANTIZE),
           Op("add1", "add", ["a", "k"], ["b"], ADD),  # a dies here: in place
           Op("mul", "mul", ["b", "k"], ["c"], BINARY),  # b is read again below: not in place
           Op("add2", "add", ["c", "b"], ["y"], ADD)]
    g = graph(ts, ops, ["x"], ["y"])
    plan = plan_memory(g)
    assert 1 in plan.inplace and plan.offset("a") == plan.offset("b")
    assert 2 not in plan.inplace and plan.tensor_buffer["c"] != plan.tensor_buffer["b"]
    assert 3 in plan.inplace and plan.storage("c") == "output"  # c dies at add2, which writes the output
    check_no_overlap(g)


def test_no_in_place_on_a_broadcast_input():
    ts = [t("x", (4, 8)), t("s", (1, 8)), t("y", (4, 8)), t("k", (1, 8), const=True), t("z", (4, 8))]
    ops = [Op("m", "reduce_max", ["x"], ["s"], {"axes": (0,)}),
           Op("add", "add", ["s", "x"], ["y"], ADD),
           Op("mul", "mul", ["y", "k"], ["z"], BINARY)]
    g = graph(ts, ops, ["x"], ["z"])
    plan = plan_memory(g)
    assert 1 not in plan.inplace  # s is [1, 8], y is [4, 8]; x is the caller's input
    check_no_overlap(g)


def test_reshape_aliases_and_copies_only_between_caller_buffers():
    ts = [t("x", (2, 6)), t("r", (12,)), t("a", (12,)), t("b", (3, 4)), t("w", (12, 12), const=True)]
    ops = [Op("r", "reshape", ["x"], ["r"]),
           Op("fc", "fully_connected", ["r", "w", ""], ["a"], FC),
           Op("r2", "reshape", ["a"], ["b"])]
    g = graph(ts, ops, ["x"], ["b"])
    plan = plan_memory(g)
    assert plan.storage("r") == "input" and plan.storage("a") == "output" == plan.storage("b")
    assert not plan.copies and plan.arena_size == 0
    g2 = graph([t("x", (2, 6)), t("y", (12,))], [Op("r", "reshape", ["x"], ["y"])], ["x"], ["y"])
    assert plan_memory(g2).copies == {0}


def test_reshape_in_the_middle_shares_the_buffer():
    ts = [t("x", (64,)), t("a", (8, 8)), t("b", (64,)), t("y", (64,)), t("w", (64, 64), const=True)]
    ops = [Op("fc", "fully_connected", ["x", "w", ""], ["a"], FC), Op("r", "reshape", ["a"], ["b"]),
           Op("fc2", "fully_connected", ["b", "w", ""], ["y"], FC)]
    g = graph(ts, ops, ["x"], ["y"])
    plan = plan_memory(g)
    assert plan.tensor_buffer["a"] == plan.tensor_buffer["b"] and plan.arena_size == 64
    check_no_overlap(g)


def test_scratch_is_planned_with_the_op():
    g = chain(3)
    check_no_overlap(g, {1: 40, 2: 4000})
    plan = plan_memory(g, {1: 40, 2: 4000})
    assert plan.arena_size == 4000 + 112  # at op 2: t2 and the scratch (t3 is the caller's output)


def test_small_cnn(tmp_path):
    m = small_cnn(seed=0)
    g = load_tflite(m.save(tmp_path / "m.tflite", [0], [len(m.sg.tensors) - 1]))
    check_no_overlap(g, {0: 27})


@pytest.mark.shared
@pytest.mark.parametrize("model", shared_models("mlperf_tiny/*.tflite") + shared_models(
    "dcsr/mobilenetv2_cifar10_dense50.tflite") + shared_models("dcsr/sparse_s_90.tflite"), ids=lambda p: p.name)
def test_shared_models_no_overlap(model):
    g = lower(load_tflite(model))
    check_no_overlap(g, {i: 64 for i, op in enumerate(g.ops) if op.kind == "conv2d"})
    plan = plan_memory(g)
    total = sum(g.tensors[n].nbytes for n in plan.tensor_buffer if plan.storage(n) == "arena")
    assert plan.arena_size < total  # memory is reused
