"""reference.run_each (the test vectors' sets in batches) gives the bits one reference.run per set gives,
and reference runs hold BLAS to one thread (threadpoolctl) or run unlimited without it."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from dmxgen import reference, vectors
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph
from dmxgen.passes import lower
from dmxgen.pipeline import load_model
from dmxgen.testing.tflite_builder import ModelBuilder, small_cnn
from tests.conftest import shared_or_skip
from tests.ops import (test_add, test_arg_max, test_avg_pool2d, test_concat, test_conv2d, test_depthwise_conv2d,
                       test_dequantize, test_fully_connected, test_log_softmax, test_maximum, test_mean,
                       test_mirror_pad, test_mul, test_pad, test_prelu, test_quantize, test_reduce_max,
                       test_reduce_min, test_requantize, test_reshape, test_resize_nearest, test_softmax,
                       test_softmax16, test_squared_difference, test_strided_slice, test_sub, test_sum,
                       test_tflite_moves, test_tflite_tables, test_transpose)
from tests.ops._harness import Case, case_sets, save
from tests.ops.test_quantize import float_edges, quantize_model
from tests.ops.test_transpose import transpose_model


def same_bits(per_set: list[dict], batched: list[dict]) -> list[str]:
    """What differs between two lists of name -> array (dtype, shape or a bit), as readable lines."""
    if len(per_set) != len(batched):
        return [f"{len(per_set)} sets vs {len(batched)}"]
    bad = []
    for j, (a, b) in enumerate(zip(per_set, batched)):
        if set(a) != set(b):
            bad.append(f"set {j}: tensors {sorted(set(a) ^ set(b))} in one only")
        for n in a.keys() & b.keys():
            x, y = np.asarray(a[n]), np.asarray(b[n])
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                bad.append(f"set {j}: {n!r} {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
    return bad


def check_graph(graph: Graph, sets: list, keep: bool = True) -> None:
    per_set = [reference.run(graph, s, keep=keep) for s in sets]
    assert same_bits(per_set, list(reference.run_each(graph, sets, keep=keep))) == []


def small_cnn_graph(tmp_path, seed: int = 0) -> Graph:
    m = small_cnn(seed=seed)
    return load_tflite(m.save(tmp_path / "cnn.tflite", [0], [len(m.sg.tensors) - 1]))


@pytest.mark.parametrize("keep", [True, False])
def test_small_cnn_in_chunks_matches_one_run_per_set(tmp_path, monkeypatch, keep):
    g = small_cnn_graph(tmp_path)
    assert all(reference.batchable(g, op) for op in g.ops), [op.kind for op in g.ops if not reference.batchable(g, op)]
    monkeypatch.setattr(reference, "MAX_BATCH", 3)  # 7 sets: chunks of 3, 3 and 1
    check_graph(g, vectors.random_inputs(g, 7, seed=4), keep=keep)


def test_chunks_shrink_for_large_working_memory(tmp_path, monkeypatch):
    g = small_cnn_graph(tmp_path)
    assert reference.chunks(g, 100) == reference.MAX_BATCH and reference.chunks(g, 5) == 5
    monkeypatch.setattr(reference, "BATCH_BYTES", 1)
    assert reference.chunks(g, 100) == 1


def batch1_quantize_cases() -> dict[str, Case]:
    """QUANTIZE from float and from int8 (a requantize) and DEQUANTIZE on [1, 2, 50]: the op files use [2, 50]."""
    shape = (1, 2, 50)
    cases = {}
    for scale, zp in test_quantize.FLOAT_CASES.values():
        m, x, y = quantize_model(scale, zp, shape=shape)
        edges = [[e.reshape(shape) for e in one] for one in float_edges(scale, zp)]
        cases[f"float_{scale}_{zp}"] = Case(m, [x], [y], n=3, seed=10, float_range=40 * scale, extra=edges)
    for s_in, zp_in, s_out, zp_out in test_requantize.REQUANT_CASES.values():
        m, x, y = quantize_model(s_out, zp_out, "int8", s_in, zp_in, shape=shape)
        cases[f"int8_{s_in}_{zp_in}_{s_out}_{zp_out}"] = Case(m, [x], [y], n=3, seed=11)
    for scale, zp in test_dequantize.DEQUANT_CASES.values():
        m = ModelBuilder()
        x = m.tensor("x", shape, scale=scale, zero_point=zp)
        y = m.tensor("y", shape, "float32")
        m.op("DEQUANTIZE", [x], [y])
        cases[f"dequantize_{scale}_{zp}"] = Case(m, [x], [y], n=3, seed=12)
    return cases


# op files of tests/ops -> their cases (name -> Case); together they run every kind in reference.BATCHED,
# with batch-1 shapes (batched) and others (one call per set), int8 and int16
SOURCES = {
    "add": lambda: {n: test_add.case(n) for n in test_add.CASES},
    "sub": lambda: {n: test_sub.case(n) for n in test_sub.CASES},
    "mul": lambda: {n: test_mul.case(n) for n in test_mul.CASES},
    "squared_difference": lambda: {n: test_squared_difference.case(n) for n in test_squared_difference.CASES},
    "maximum": lambda: {n: test_maximum.case(n) for n in test_maximum.CASES},
    "concat": lambda: {n: test_concat.case(n) for n in test_concat.CASES},
    "conv2d": lambda: {n: test_conv2d.case(n, n=3) for n in test_conv2d.CASES},
    "conv2d_16x8": lambda: {n: test_conv2d.case16(n) for n in test_conv2d.CASES16},
    "depthwise_conv2d": lambda: {n: test_depthwise_conv2d.case(n, n=3) for n in test_depthwise_conv2d.CASES},
    "depthwise_16x8": lambda: {n: test_depthwise_conv2d.case16(n) for n in test_depthwise_conv2d.CASES16},
    "fully_connected": lambda: {n: test_fully_connected.case(n) for n in test_fully_connected.CASES},
    "avg_pool2d": lambda: {n: test_avg_pool2d.pool_case("AVERAGE_POOL_2D", n) for n in test_avg_pool2d.CASES},
    "max_pool2d": lambda: {n: test_avg_pool2d.pool_case("MAX_POOL_2D", n) for n in test_avg_pool2d.CASES},
    "mean": lambda: {n: test_mean.case(n) for n in test_mean.INT8},
    "sum": lambda: {n: test_sum.case(n) for n in test_sum.CASES},
    "reduce_max": lambda: {n: test_reduce_max.case(n, "int8") for n in test_reduce_max.CASES},
    "reduce_min": lambda: {n: test_reduce_min.case(n) for n in test_reduce_min.CASES},
    "pad": lambda: {n: test_pad.case(n, "int8") for n in test_pad.CASES},
    "mirror_pad": lambda: {n: test_mirror_pad.case(n, "reflect") for n in test_mirror_pad.CASES},
    "reshape": lambda: {n: test_reshape.case(n, True, "int8") for n in test_reshape.CASES},
    "transpose": lambda: {n: test_transpose.case(n) for n in test_transpose.CASES},
    "arg_max": lambda: {n: test_arg_max.case("ARG_MAX", n) for n in test_arg_max.CASES},
    "quantize": lambda: {n: test_quantize.case(n) for n in test_quantize.FLOAT_CASES},
    "dequantize": lambda: {n: test_dequantize.case(n) for n in test_dequantize.DEQUANT_CASES},
    "requantize": lambda: {n: test_requantize.case(n) for n in test_requantize.REQUANT_CASES},
    "quantize_batch1": batch1_quantize_cases,
    "prelu": lambda: {n: test_prelu.case(n) for n in test_prelu.CASES},
    "softmax": lambda: {n: test_softmax.case(n) for n in test_softmax.CASES},
    "softmax16": lambda: {n: test_softmax16.case(n) for n in test_softmax16.CASES},
    "log_softmax": lambda: {n: test_log_softmax.case(n) for n in test_log_softmax.CASES},
    "lut": lambda: {n: test_tflite_tables.case(n) for n in test_tflite_tables.CASES},
    "strided_slice": lambda: {n: test_strided_slice.case(n) for n in test_strided_slice.CASES},
    "resize_nearest": lambda: {n: test_resize_nearest.case(n) for n in test_resize_nearest.CASES},
    "moves": lambda: {n: test_tflite_moves.case(n) for n in test_tflite_moves.CASES},
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_op_cases_match_one_run_per_set(tmp_path, source):
    batched = 0
    for name, case in SOURCES[source]().items():
        g = case.m if isinstance(case.m, Graph) else load_tflite(save(case.m, tmp_path, case.inputs, case.outputs,
                                                                      name=name))
        batched += sum(reference.batchable(g, op) for op in g.ops)
        sets = case_sets(case, g)
        per_set = [reference.run(g, s, keep=True) for s in sets]
        assert same_bits(per_set, list(reference.run_each(g, sets, keep=True))) == [], name
    # kinds outside BATCHED, and op files whose shapes all start with more than 1: one call per set
    if source not in ("strided_slice", "resize_nearest", "quantize", "dequantize", "requantize"):
        assert batched, f"no case of {source} takes the batched path"


def mean_over_batch_axis(tmp_path) -> Graph:
    """MEAN over axes 0 and 1 of [1, 4, 4, 3], kept: axis 0 is a model axis here, not the sets'."""
    m, x, y = test_mean.mean_model((1, 4, 4, 3), [0, 1], True)
    return load_tflite(save(m, tmp_path, [x], [y], name="mean"))


def test_an_op_reading_axis_0_runs_once_per_set(tmp_path):
    g = mean_over_batch_axis(tmp_path)
    assert [op.kind for op in g.ops] == ["mean"] and not reference.batchable(g, g.ops[0])
    check_graph(g, vectors.random_inputs(g, 4, seed=2))


def test_the_comparison_notices_a_kernel_batched_across_axis_0(tmp_path, monkeypatch):
    """TRANSPOSE [1, 2, 1, 3] by (2, 1, 0, 3) moves axis 0: batched anyway, the sets' values interleave."""
    m, x, y = transpose_model((1, 2, 1, 3), (2, 1, 0, 3))
    g = load_tflite(save(m, tmp_path, [x], [y], name="transpose"))
    assert [op.kind for op in g.ops] == ["transpose"] and not reference.batchable(g, g.ops[0])
    sets = vectors.random_inputs(g, 4, seed=2)
    per_set = [reference.run(g, s) for s in sets]
    assert same_bits(per_set, list(reference.run_each(g, sets))) == []
    monkeypatch.setitem(reference.BATCHED, "transpose", lambda graph, op: True)
    assert reference.batchable(g, g.ops[0])
    assert same_bits(per_set, list(reference.run_each(g, sets))) != []


def test_a_replaced_kernel_is_called_once_per_set(tmp_path, monkeypatch):
    g = small_cnn_graph(tmp_path)
    original = reference.KERNELS["fully_connected"]
    shapes = []

    def spy(op, args, out_t):
        shapes.append(args[0].shape)
        return original(op, args, out_t)

    monkeypatch.setitem(reference.KERNELS, "fully_connected", spy)
    list(reference.run_each(g, vectors.random_inputs(g, 3, seed=0)))
    assert shapes == [(1, 72)] * 3


def test_vectors_compute_is_what_one_run_per_set_gives(tmp_path):
    g = small_cnn_graph(tmp_path, seed=3)
    low = lower(g, [])
    v = vectors.compute(g, low, 5, seed=9)
    for s, outs, layers in zip(v.inputs, v.outputs, v.layers):
        kept = reference.run(low, s, keep=True)
        assert all(np.array_equal(layers[i], kept[op.outputs[0]]) for i, op in enumerate(low.ops))
        want = reference.run(g, s)
        assert all(o.dtype == want[n].dtype and np.array_equal(o, want[n]) for o, n in zip(outs, g.outputs))


@pytest.mark.shared
@pytest.mark.parametrize("model", ["dcsr/mobilenetv2_cifar10_dense100.tflite", "mlperf_tiny/kws_ref_model.tflite"])
def test_shared_model_batched_matches_one_run_per_set(model):
    g = load_model(shared_or_skip(model))
    low = lower(g, [])
    assert all(reference.batchable(low, op) for op in low.ops)
    check_graph(low, vectors.random_inputs(g, 3, seed=1))


# -- BLAS threads ----------------------------------------------------------------------------------
def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_reference_runs_hold_blas_to_one_thread_and_restore_it(tmp_path, monkeypatch):
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    g = small_cnn_graph(tmp_path)
    seen = []
    original = reference.KERNELS["conv2d"]

    def spy(op, args, out_t):
        seen.append(blas_threads())
        return original(op, args, out_t)

    monkeypatch.setitem(reference.KERNELS, "conv2d", spy)
    with threadpool_limits(2, user_api="blas"):  # a known setting outside, whatever the machine's cores
        before = blas_threads()
        if not before:
            pytest.skip("numpy is not linked to a BLAS threadpoolctl sees")
        reference.run(g, vectors.random_inputs(g, 1, 0)[0])
        list(reference.run_each(g, vectors.random_inputs(g, 2, 0)))
        with reference.single_threaded_blas():  # nested: the inner exits leave the limit on
            reference.run(g, vectors.random_inputs(g, 1, 0)[0])
            assert set(blas_threads()) == {1}
        assert blas_threads() == before
    assert seen and all(set(s) == {1} for s in seen)


def test_without_threadpoolctl_the_reference_runs_unlimited(tmp_path, monkeypatch):
    g = small_cnn_graph(tmp_path)
    s = vectors.random_inputs(g, 1, 0)[0]
    want = reference.run(g, s)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    monkeypatch.setattr(reference, "_BLAS", [])
    got = reference.run(g, s)
    assert reference._BLAS == [None]
    assert all(np.array_equal(want[n], got[n]) for n in g.outputs)
