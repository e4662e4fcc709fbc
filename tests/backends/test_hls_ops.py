"""HLS kernels vs the reference on small built models, one C simulation for many cases.

Every case is a one-op (or small) int8 model made with ModelBuilder; all of
them are merged into one multi-input, multi-output graph (a "zoo"), exported
once per configuration and run through `make -C hls csim`, which compares
every output of every case to the bit with `dmxgen.reference.run`.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends.hls import write_hls
from dmxgen.backends.hls_csim import HARNESS, run_csim
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph
from dmxgen.testing.tflite_builder import ModelBuilder
from dmxgen.testing.zoo import merge
from tests.ops.test_add import binary_model
from tests.ops.test_avg_pool2d import pool_model
from tests.ops.test_conv2d import out_size as _out
from tests.ops.test_mean import mean_model
from tests.ops.test_pad import pad_model
from tests.ops.test_quantize import quantize_model
from tests.ops.test_softmax import softmax_model

# --- one-op models (those of tests/ops where they are the same; conv and fc here also store sparse) ------


def _weights(rng, shape, sparsity: float, zero_rows: int = 0, wrange: int = 127) -> np.ndarray:
    w = rng.integers(-wrange, wrange + 1, size=shape).astype(np.int8)
    w[rng.random(shape) < sparsity] = 0
    w[:zero_rows] = 0  # an empty row: CSR's row_ptr repeats, dCSR's row has no group
    return w


def conv(seed=0, *, n=1, h=8, w=8, cin=3, cout=4, k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME",
         depthwise=False, mult=1, per_channel=True, zp_in=-128, zp_out=-5, act="NONE", spread=1.0,
         sparsity=0.0, with_bias=True, s_in=0.02, s_out=0.05):
    """CONV_2D or DEPTHWISE_CONV_2D whose weight scales put typical outputs near +-40 LSB * spread."""
    rng = np.random.default_rng(seed)
    kh, kw = k
    cout = cin * mult if depthwise else cout
    taps = kh * kw * (1 if depthwise else cin)
    base = s_out * 40 * spread / (s_in * np.sqrt(taps * max(1 - sparsity, 0.05)) * 74 * 74)
    s_w = (base * rng.uniform(0.5, 2.0, cout) if per_channel else np.array([base])).astype(np.float32)
    m = ModelBuilder()
    x = m.tensor("x", [n, h, w, cin], scale=s_in, zero_point=zp_in)
    shape = [1, kh, kw, cout] if depthwise else [cout, kh, kw, cin]
    wt = m.tensor("w", shape, scale=s_w, zero_point=np.zeros(s_w.size), axis=3 if depthwise else 0,
                  data=_weights(rng, shape, sparsity))
    ins = [x, wt]
    if with_bias:
        ins.append(m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(s_w.size),
                            data=rng.integers(-4000, 4000, cout)))
    y = m.tensor("y", [n, _out(h, kh, stride[0], dil[0], padding), _out(w, kw, stride[1], dil[1], padding), cout],
                 scale=s_out, zero_point=zp_out)
    opts = dict(padding=padding, strideH=stride[0], strideW=stride[1], dilationHFactor=dil[0],
                dilationWFactor=dil[1], fusedActivationFunction=act)
    if depthwise:
        m.op("DEPTHWISE_CONV_2D", ins, [y], depthMultiplier=mult, **opts)
    else:
        m.op("CONV_2D", ins, [y], **opts)
    return m, [x], [y]


def fc(seed=0, *, in_shape=(1, 16), cout=8, per_channel=False, zp_in=-128, zp_out=-5, act="NONE", spread=1.0,
       sparsity=0.0, zero_rows=0, with_bias=True, wrange=127, s_in=0.02, s_out=0.05):
    rng = np.random.default_rng(seed)
    cin = in_shape[-1]
    base = s_out * 40 * spread / (s_in * np.sqrt(cin * max(1 - sparsity, 0.05)) * 74 * max(wrange / 1.7, 0.6))
    s_w = np.atleast_1d(base * rng.uniform(0.5, 2.0, cout) if per_channel else base).astype(np.float32)
    m = ModelBuilder()
    x = m.tensor("x", in_shape, scale=s_in, zero_point=zp_in)
    wt = m.tensor("w", [cout, cin], scale=s_w, zero_point=np.zeros(s_w.size), axis=0,
                  data=_weights(rng, (cout, cin), sparsity, zero_rows, wrange))
    b = m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(s_w.size),
                 data=rng.integers(-40, 41, cout) * int(np.sqrt(cin) * wrange)) if with_bias else -1
    y = m.tensor("y", [int(np.prod(in_shape)) // cin, cout], scale=s_out, zero_point=zp_out)
    m.op("FULLY_CONNECTED", [x, wt, b], [y], fusedActivationFunction=act)
    return m, [x], [y]


def binary(opname, shape_a, shape_b, **kw):
    m, ins, y = binary_model(opname, shape_a, shape_b, **kw)  # the op tests' model: ADD/MUL, maybe a constant b
    return m, ins, [y]


def _lists(built):
    """(m, x, y) as the op tests return it -> (m, [x], [y]) as the zoo takes it."""
    m, x, y = built
    return m, [x], [y]


def pool(opname, zp=-20, **kw):
    return _lists(pool_model(opname, zp=zp, **kw))


def pad(shape, pads, value=None, zp=-5):
    return _lists(pad_model(shape, pads, value=value, zp=zp))


def requantize(s_in, zp_in, s_out, zp_out, shape=(2, 20)):
    return _lists(quantize_model(s_out, zp_out, "int8", s_in, zp_in, shape=shape))


def reduce(opname, shape, axes, keep, s_in=0.05, zp_in=-3, s_out=0.02, zp_out=5):
    if opname == "REDUCE_MAX":  # int8 REDUCE_MAX keeps the quantization
        s_out, zp_out = s_in, zp_in
    return _lists(mean_model(shape, axes, keep, s_in=s_in, zp_in=zp_in, s_out=s_out, zp_out=zp_out, opname=opname))


def softmax(shape, beta=1.0, s_in=0.1, zp_in=0):
    return _lists(softmax_model(shape, beta=beta, s_in=s_in, zp_in=zp_in))


def branchy(seed=0):
    """Fan-out (the input feeds two branches that an ADD joins), reshape, FC rows, requantize, softmax."""
    m, (x,), (c1,) = conv(seed, h=9, w=9, cin=4, cout=6, stride=(2, 2), act="RELU", zp_in=-7, s_out=0.06)
    rng = np.random.default_rng(seed + 1)
    dw = m.tensor("dw/w", [1, 3, 3, 8], scale=rng.uniform(0.002, 0.004, 8).astype(np.float32), zero_point=np.zeros(8),
                  axis=3, data=_weights(rng, (1, 3, 3, 8), 0.0))
    d = m.tensor("dw/out", [1, 9, 9, 8], scale=0.05, zero_point=-10)
    m.op("DEPTHWISE_CONV_2D", [x, dw], [d], padding="SAME", strideH=1, strideW=1, depthMultiplier=2,
         dilationHFactor=2, dilationWFactor=2, fusedActivationFunction="NONE")
    mp = m.tensor("mp/out", [1, 5, 5, 8], scale=0.05, zero_point=-10)
    m.op("MAX_POOL_2D", [d], [mp], padding="SAME", strideH=2, strideW=2, filterHeight=3, filterWidth=3)
    pw = m.tensor("pw/w", [6, 1, 1, 8], scale=np.float32(0.01), zero_point=[0], data=_weights(rng, (6, 1, 1, 8), 0.7))
    c2 = m.tensor("pw/out", [1, 5, 5, 6], scale=0.06, zero_point=3)
    m.op("CONV_2D", [mp, pw], [c2], padding="VALID", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1)
    s = m.tensor("add/out", [1, 5, 5, 6], scale=0.08, zero_point=-20)
    m.op("ADD", [c1, c2], [s], fusedActivationFunction="RELU6")
    r = m.tensor("reshape/out", [2, 75], scale=0.08, zero_point=-20)
    m.op("RESHAPE", [s, m.tensor("reshape/shape", [2], "int32", data=[2, 75])], [r], newShape=[2, 75])
    fw = m.tensor("fc/w", [10, 75], scale=np.float32(0.0012), zero_point=[0], data=_weights(rng, (10, 75), 0.85, 2))
    f = m.tensor("fc/out", [2, 10], scale=0.05, zero_point=4)
    m.op("FULLY_CONNECTED", [r, fw, -1], [f])
    q = m.tensor("q/out", [2, 10], scale=0.1, zero_point=-2)
    m.op("QUANTIZE", [f], [q])
    y = m.tensor("softmax/out", [2, 10], scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [q], [y], beta=1.0)
    return m, [x], [y]


def edges():
    """Two inputs (one float32 into a QUANTIZE), four outputs (one a DEQUANTIZE to float32, one also read inside)."""
    m = ModelBuilder()
    xf = m.tensor("x_float", [1, 6, 6, 3], "float32")
    xq = m.tensor("x_q", [1, 6, 6, 3], scale=0.05, zero_point=-4)
    m.op("QUANTIZE", [xf], [xq])
    y = m.tensor("y", [1, 6, 6, 3], scale=0.04, zero_point=9)
    a = m.tensor("sum", [1, 6, 6, 3], scale=0.08, zero_point=-1)
    m.op("ADD", [xq, y], [a])  # x_q is read twice: a split process in the streaming top
    mp = m.tensor("pooled", [1, 3, 3, 3], scale=0.05, zero_point=-4)
    m.op("MAX_POOL_2D", [xq], [mp], padding="VALID", strideH=2, strideW=2, filterHeight=2, filterWidth=2)
    rmax = m.tensor("channel_max", [1, 6, 6, 1], scale=0.08, zero_point=-1)
    m.op("REDUCE_MAX", [a, m.tensor("ax3", [1], "int32", data=[3])], [rmax], keepDims=True)
    mq = m.tensor("mean_q", [1, 3], scale=0.02, zero_point=2)
    m.op("MEAN", [a, m.tensor("ax12", [2], "int32", data=[1, 2])], [mq], keepDims=False)
    mf = m.tensor("mean", [1, 3], "float32")
    m.op("DEQUANTIZE", [mq], [mf])
    return m, [xf, y], [a, rmax, mf, mp]


CASES = {
    **{f"conv_{k}": (conv, kw) for k, kw in {
        "same": {}, "valid_s2_odd": {"h": 9, "w": 7, "stride": (2, 2), "padding": "VALID"},
        "same_s2_even": {"stride": (2, 2)}, "same_s3_odd": {"h": 11, "w": 10, "stride": (3, 3)},
        "dil2_same": {"h": 9, "w": 9, "dil": (2, 2)}, "dil2x1_s2": {"h": 10, "w": 9, "dil": (2, 1), "stride": (2, 2)},
        "k1x1": {"k": (1, 1), "cin": 8, "cout": 6}, "k2x2_same": {"k": (2, 2)}, "k2x5": {"k": (2, 5), "h": 6, "w": 11},
        "k5x5_s2": {"k": (5, 5), "h": 10, "w": 9, "stride": (2, 2), "cin": 2},
        "kernel_is_image": {"k": (4, 4), "h": 4, "w": 4, "padding": "VALID", "cout": 7},
        "per_tensor": {"per_channel": False}, "zp_in_127": {"zp_in": 127, "zp_out": 127},
        "relu": {"act": "RELU", "zp_out": -20}, "relu6": {"act": "RELU6", "zp_out": -100, "s_out": 0.03},
        "relu_n1_to_1": {"act": "RELU_N1_TO_1", "zp_out": 0, "s_out": 0.004},
        "batch2": {"n": 2, "h": 7, "w": 6, "stride": (2, 2)}, "saturate": {"spread": 8.0},
        "no_bias": {"with_bias": False},
        "sparse_1x1": {"k": (1, 1), "cin": 40, "cout": 12, "sparsity": 0.9},
        "sparse_3x3": {"cin": 6, "cout": 5, "sparsity": 0.8},
    }.items()},
    **{f"dw_{k}": (conv, {"depthwise": True, **kw}) for k, kw in {
        "same": {"cin": 4}, "mult2_s2_odd": {"mult": 2, "h": 9, "w": 7, "stride": (2, 2)},
        "mult3_valid": {"mult": 3, "cin": 2, "padding": "VALID"}, "dil2_same": {"dil": (2, 2), "h": 9},
        "dil_1x3": {"dil": (1, 3), "w": 12}, "k5x5_s2": {"k": (5, 5), "stride": (2, 2), "h": 10, "w": 10},
        "per_tensor": {"per_channel": False}, "relu6": {"act": "RELU6", "zp_in": 0, "s_out": 0.03, "zp_out": -100},
        "batch2": {"n": 2, "stride": (2, 2), "h": 7, "w": 6}, "saturate": {"spread": 8.0},
    }.items()},
    **{f"fc_{k}": (fc, kw) for k, kw in {
        "base": {}, "batches3": {"in_shape": (3, 16)}, "nhwc_rows": {"in_shape": (2, 2, 2, 8)},
        "no_bias": {"with_bias": False}, "zp_127": {"zp_in": 127, "zp_out": 127},
        "relu": {"act": "RELU", "zp_out": -30},
        "per_channel": {"per_channel": True, "in_shape": (3, 16)}, "saturate": {"spread": 8.0, "in_shape": (2, 16)},
        "shift_positive": {"spread": 3.3, "zp_in": 0, "zp_out": 0, "in_shape": (2, 4), "wrange": 1},  # multiplier > 1
        "sparse_long": {"in_shape": (1, 300), "cout": 20, "sparsity": 0.92, "zero_rows": 3},
        "sparse_dense_rows": {"in_shape": (2, 40), "cout": 6, "sparsity": 0.3},
    }.items()},
    **{f"{op.lower()}_{k}": (binary, {"opname": op, "shape_a": a, "shape_b": b, **kw}) for op in ("ADD", "MUL")
       for k, (a, b, kw) in {
        "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
        "channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
        "both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
        "rank_differs": ((1, 4, 4, 3), (3,), {}),
        "const_scalar": ((1, 4, 4, 3), (), {"const_b": True}),
        "const_vector": ((1, 4, 4, 6), (6,), {"const_b": True, "zp": (-128, 127, 0)}),
        "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (0.05, 0.05, 0.04), "zp": (0, 0, -100)}),
        "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.1, 0.01)}),
        "scales_differ": ((2, 3, 5), (2, 3, 5), {"s": (0.003, 0.2, 0.02)}),
    }.items()},
    **{f"{op[:3].lower()}pool_{k}": (pool, {"opname": op, **kw}) for op in ("AVERAGE_POOL_2D", "MAX_POOL_2D")
       for k, kw in {
        "valid_2x2_s2": {}, "valid_3x3_s2_odd": {"f": (3, 3), "h": 9, "w": 7},
        "same_3x3_s1": {"f": (3, 3), "stride": (1, 1), "padding": "SAME"},
        "same_2x2_s2_odd": {"f": (2, 2), "padding": "SAME", "h": 7, "w": 5},
        "same_4x4_s3": {"f": (4, 4), "stride": (3, 3), "padding": "SAME", "h": 10, "w": 8},
        "global": {"f": (5, 6), "h": 5, "w": 6, "stride": (1, 1)},
        "filter_larger_than_image": {"f": (7, 7), "h": 4, "w": 5, "stride": (1, 1), "padding": "SAME"},
        "relu6": {"act": "RELU6", "scale": 0.03, "zp": -100}, "batch2": {"n": 2, "f": (3, 3), "padding": "SAME"},
    }.items()},
    **{f"pad_{k}": (pad, kw) for k, kw in {
        "hw_asymmetric": {"shape": (1, 5, 4, 3), "pads": [[0, 0], [0, 2], [3, 1], [0, 0]]},
        "every_axis": {"shape": (2, 3, 2, 3), "pads": [[1, 0], [0, 2], [2, 1], [1, 1]]},
        "rank2": {"shape": (3, 5), "pads": [[2, 1], [0, 3]]},
        "rank3_padv2": {"shape": (2, 3, 4), "pads": [[0, 1], [1, 0], [2, 2]], "value": 17, "zp": -128},
    }.items()},
    **{f"requant_{k}": (requantize, dict(zip(("s_in", "zp_in", "s_out", "zp_out"), v))) for k, v in {
        "scale_down": (0.1, 0, 0.05, 0), "scale_up": (0.05, -3, 0.2, 4), "zp_127": (0.02, 127, 0.01, 127),
        "ratio_large": (1.0, 0, 0.001, 0), "ratio_just_below_one": (0.0999, 1, 0.1, -1),
    }.items()},
    **{f"{op.lower()}_{k}": (reduce, {"opname": op, **kw}) for op in ("MEAN", "REDUCE_MAX") for k, kw in {
        "hw_keep": {"shape": (1, 5, 7, 6), "axes": [1, 2], "keep": True},
        "hw": {"shape": (1, 5, 7, 6), "axes": [1, 2], "keep": False},
        "last_axis": {"shape": (2, 4, 3, 5), "axes": [-1], "keep": False},
        "three_axes": {"shape": (2, 4, 3, 5), "axes": [3, 1, 2], "keep": False},
        "all_axes_rank3": {"shape": (2, 3, 4), "axes": [0, 1, 2], "keep": True},
        "rank2": {"shape": (6, 10), "axes": [1], "keep": False},
        "count_49": {"shape": (1, 7, 7, 4), "axes": [1, 2], "keep": True, "zp_in": -128, "s_out": 0.05, "zp_out": -128},
    }.items()},
    **{f"softmax_{k}": (softmax, kw) for k, kw in {
        "row10": {"shape": (1, 10)}, "rows4": {"shape": (4, 10)}, "nhwc": {"shape": (1, 2, 3, 8)},
        "beta_2": {"shape": (3, 12), "beta": 2.0}, "large_scale": {"shape": (3, 16), "s_in": 0.5, "zp_in": 10},
        "small_scale": {"shape": (3, 16), "s_in": 1 / 256, "zp_in": -128},
        "wide_row": {"shape": (2, 100), "s_in": 0.08},
        "two_classes": {"shape": (6, 2), "s_in": 0.03}, "zp_127": {"shape": (2, 7), "s_in": 0.05, "zp_in": 127},
    }.items()},
    "branchy": (branchy, {}),
    "edges": (edges, {}),
}


# --- the zoo: every case in one graph -----------------------------------------------------------


def zoo(tmp: Path, semantics: str) -> Graph:
    graphs = {}
    for case, (build, kw) in CASES.items():
        m, ins, outs = build(**kw)
        graphs[case] = load_tflite(m.save(tmp / f"{case}.tflite", ins, outs), semantics=semantics)
    return merge(graphs)


def vectors(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """n random vectors, then every input at its low and its high value (int8: -128 and 127, float: -4 and 0)."""
    rng = np.random.default_rng(seed)
    ts = [graph.tensors[name] for name in graph.inputs]
    fixed = {"low": {"int8": -128, "float32": -4.0}, "high": {"int8": 127, "float32": 0.0}}

    def one(kind):
        out = []
        for t in ts:
            if kind != "random":
                v = np.full(t.shape, fixed[kind][t.dtype])
            elif t.dtype == "float32":
                v = rng.normal(0, 3, t.shape)
            else:
                v = rng.integers(-128, 128, t.shape)
            out.append(v.astype(t.dtype))
        return out

    return [one("random") for _ in range(n)] + [one("low"), one("high")]


def export_zoo(tmp: Path, semantics: str, **options) -> tuple[Graph, Path]:
    graph = zoo(tmp, semantics)
    ins = vectors(graph, 4, seed=3)
    out = tmp / "out"
    write_hls(graph, out, sample_inputs=ins, expected_outputs=[reference.run(graph, v) for v in ins], **options)
    return graph, out


def assert_pass(out: Path, **kw) -> str:
    r = run_csim(out, opt="-O1", **kw)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


CONFIGS = {
    "tflite-dense-array": ("tflite", {"weight_format": "dense", "interface": "array"}, {}),
    "tflm-csr-stream": ("tflm", {"weight_format": "csr", "interface": "stream", "reuse_factor": 4}, {}),
    "tflite-dcsr-array-sanitized": ("tflite", {"weight_format": "dcsr", "interface": "array"}, {"sanitize": True}),
    "tflm-auto-stream": ("tflm", {"weight_format": "auto", "interface": "stream"}, {}),
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_zoo_csim_bit_exact(tmp_path, config):
    semantics, options, run = CONFIGS[config]
    graph, out = export_zoo(tmp_path, semantics, **options)
    stdout = assert_pass(out, **run)
    values = sum(graph.tensors[n].size for n in graph.outputs) * 6
    assert f"PASS: 6 vectors, {values} output values bit-exact" in stdout
    kinds = {op.kind for op in graph.ops}
    softmax = "softmax_gemmlowp" if semantics == "tflm" else "softmax"  # one kind per softmax algorithm
    assert kinds >= {"conv2d", "depthwise_conv2d", "fully_connected", "add", "mul", "avg_pool2d", "max_pool2d",
                     "pad", "quantize", "mean", "reduce_max", softmax, "reshape", "dequantize"}
    assert kinds & {"softmax", "softmax_gemmlowp"} == {softmax}


def test_zoo_cases_are_not_degenerate(tmp_path):
    """Every case's output takes several values over the test vectors, so the csim comparisons mean something."""
    graph = zoo(tmp_path, "tflite")
    ins = vectors(graph, 4, seed=3)
    outs = [reference.run(graph, v) for v in ins]
    few = [n for n in graph.outputs if len(np.unique(np.concatenate([o[n].reshape(-1) for o in outs]))) < 3]
    assert not few, f"outputs with fewer than 3 distinct values: {few}"


def test_sparse_formats_reach_the_kernels(tmp_path):
    """csr/dcsr exports really store the sparse layers in that format, and dcsr pads rows where needed."""
    graph = zoo(tmp_path, "tflite")
    ins = vectors(graph, 1, seed=0)[:1]
    exp = [reference.run(graph, ins[0])]
    for fmt in ("csr", "dcsr"):
        m = write_hls(graph, tmp_path / fmt, weight_format=fmt, sample_inputs=ins, expected_outputs=exp)
        formats = {layer["op"]: set() for layer in m["layers"]}
        for layer in m["layers"]:
            formats[layer["op"]].add(layer["format"])
        assert formats["conv2d"] == {fmt} and formats["fully_connected"] == {fmt}
        assert formats["depthwise_conv2d"] == {"dense"}  # no sparse depthwise kernel
        sparse = next(la for la in m["layers"] if la["name"] == "fc_sparse_long/fully_connected_0")
        assert sparse["bytes"] < sparse["dense_bytes"] / 2
        header = (tmp_path / fmt / "hls" / "layers" / f"{sparse['ident']}.h").read_text()
        assert f"dmx::matvec_{fmt}<" in header


STRICT = ["-std=c++14", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror",
          "-Wno-unknown-pragmas"]


@pytest.mark.parametrize("interface", ["array", "stream"])
def test_generated_cpp_is_warning_free(tmp_path, interface):
    """Every kernel (the zoo uses them all) and the testbench, under stricter flags than the Makefile's."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    _, out = export_zoo(tmp_path, "tflm" if interface == "stream" else "tflite", weight_format="auto",
                        interface=interface)
    ap_types = subprocess.run(["make", "-s", "-C", str(HARNESS), "print-ap-types"], capture_output=True, text=True,
                              check=True).stdout.strip()
    hls = out / "hls"
    for source in ("top.cpp", "tb.cpp"):
        r = subprocess.run(["g++", *STRICT, f"-I{hls}", "-isystem", ap_types, str(hls / source)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", r.stderr[-3000:]
