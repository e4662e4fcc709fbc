"""One-layer models through export -> host gcc with sanitizers -> compare with the reference, to the bit.

Each case builds a .tflite with the edge the kernel must get right (padding
at odd sizes, strides, dilation, depth multiplier, per-channel scales, zero
points at -128 and 127, saturation, broadcasting, float I/O, both softmax and
FC semantics) and also feeds the input's extremes.
"""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder
from tests.backends.conftest import assert_bit_exact, export_verify, extremes, needs_gcc, rand_weights, save
from tests.ops.test_add import binary_model
from tests.ops.test_conv2d import out_size as _out_hw

pytestmark = needs_gcc


def conv_model(tmp_path, name, in_shape=(1, 9, 7, 3), cout=6, k=(3, 3), stride=(2, 2), padding="SAME",
               dilation=(1, 1), act="NONE", in_zp=-128, out_zp=5, sparsity=0.0, depthwise=False, mult=1,
               per_channel=True, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    n, h, w, cin = in_shape
    in_scale = 0.05
    x = m.tensor("x", in_shape, scale=in_scale, zero_point=in_zp)
    if depthwise:
        cout, wshape, axis = cin * mult, [1, k[0], k[1], cin * mult], 3
    else:
        wshape, axis = [cout, k[0], k[1], cin], 0
    wq = rand_weights(rng, wshape, sparsity)
    ws = rng.uniform(0.004, 0.02, cout) if per_channel else np.array([0.01])
    wt = m.tensor("w", wshape, scale=ws, zero_point=np.zeros(ws.size), data=wq, axis=axis)
    b = -1
    if bias:
        b = m.tensor("b", [cout], "int32", scale=ws * in_scale, zero_point=np.zeros(ws.size),
                     data=rng.integers(-4000, 4000, cout))
    oh = _out_hw(h, k[0], stride[0], dilation[0], padding)
    ow = _out_hw(w, k[1], stride[1], dilation[1], padding)
    taps = k[0] * k[1] * (1 if depthwise else cin)
    y = m.tensor("y", [n, oh, ow, cout], scale=in_scale * float(ws.mean()) * np.sqrt(taps) * 60, zero_point=out_zp)
    opts = dict(padding=padding, strideH=stride[0], strideW=stride[1], dilationHFactor=dilation[0],
                dilationWFactor=dilation[1], fusedActivationFunction=act)
    if depthwise:
        m.op("DEPTHWISE_CONV_2D", [x, wt, b], [y], depthMultiplier=mult, **opts)
    else:
        m.op("CONV_2D", [x, wt, b], [y], **opts)
    return save(tmp_path, name, m, [x], [y])


def fc_model(tmp_path, name, batches=1, cin=40, cout=12, sparsity=0.0, bias=True, act="NONE", in_zp=3, seed=0):
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    x = m.tensor("x", [batches, cin], scale=0.05, zero_point=in_zp)
    wt = m.tensor("w", [cout, cin], scale=0.01, zero_point=0, data=rand_weights(rng, (cout, cin), sparsity))
    b = m.tensor("b", [cout], "int32", scale=0.0005, zero_point=0, data=rng.integers(-3000, 3000, cout)) if bias else -1
    y = m.tensor("y", [batches, cout], scale=0.05 * 0.01 * np.sqrt(cin) * 60, zero_point=-7)
    m.op("FULLY_CONNECTED", [x, wt, b], [y], fusedActivationFunction=act)
    return save(tmp_path, name, m, [x], [y])


def check(model, tmp_path, in_shape=None, **kw):
    files = [extremes(tmp_path, in_shape)] if in_shape is not None else []
    manifest, result = export_verify(model, tmp_path / "out", input_files=files, **kw)
    assert_bit_exact(result)
    assert result["inputs"] == 8 + 3 * len(files)
    return manifest


# -- convolutions ---------------------------------------------------------------------

@pytest.mark.parametrize("padding,stride,k,dilation", [
    ("SAME", (2, 2), (3, 3), (1, 1)),   # odd sizes: SAME pads 1 before, 1 after
    ("VALID", (2, 2), (3, 2), (1, 1)),  # non-square kernel, the far edge is dropped
    ("SAME", (1, 1), (3, 3), (2, 2)),   # dilation 2
    ("VALID", (2, 1), (1, 1), (1, 1)),  # strided 1x1: read in place, no im2col
    ("SAME", (1, 1), (1, 1), (1, 1)),   # plain 1x1
])
def test_conv2d_geometry(tmp_path, padding, stride, k, dilation):
    model = conv_model(tmp_path, "conv", k=k, stride=stride, padding=padding, dilation=dilation, act="RELU6")
    m = check(model, tmp_path, (1, 9, 7, 3))
    assert m["layers"][0]["op"] == "conv2d"


def test_conv2d_zero_point_127_per_tensor_no_bias(tmp_path):
    model = conv_model(tmp_path, "conv", in_zp=127, out_zp=127, per_channel=False, bias=False)
    check(model, tmp_path, (1, 9, 7, 3))


@pytest.mark.parametrize("out_scale,out_zp", [(0.0005, 0), (2.5e-7, 100)])
def test_conv2d_saturates(tmp_path, out_scale, out_zp):
    """Output scales far too small: most values clamp at -128/127. With 2.5e-7 the multiplier
    is ~4000 (a left shift of 12 before the high multiply) and requantized values reach 1.6e8."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 5, 5, 2], scale=0.05, zero_point=0)
    w = m.tensor("w", [4, 3, 3, 2], scale=np.full(4, 0.02), zero_point=np.zeros(4),
                 data=rand_weights(np.random.default_rng(1), (4, 3, 3, 2)), axis=0)
    y = m.tensor("y", [1, 5, 5, 4], scale=out_scale, zero_point=out_zp)
    m.op("CONV_2D", [x, w, -1], [y], padding="SAME", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
         fusedActivationFunction="NONE")
    check(save(tmp_path, "sat", m, [x], [y]), tmp_path, (1, 5, 5, 2))


@pytest.mark.parametrize("fmt", ["csr", "dcsr"])
@pytest.mark.parametrize("k,padding", [((1, 1), "VALID"), ((3, 3), "SAME")])
def test_conv2d_sparse_kernels(tmp_path, fmt, k, padding):
    model = conv_model(tmp_path, "conv", in_shape=(1, 6, 5, 24), cout=20, k=k, stride=(1, 1), padding=padding,
                       sparsity=0.8)
    m = check(model, tmp_path, (1, 6, 5, 24), fmt=fmt)
    layer = m["layers"][0]
    assert layer["format"] == fmt and layer["kernel"] == f"dmx_conv2d_{fmt}_s8"
    assert layer["weight_bytes"] < layer["dense_weight_bytes"]


@pytest.mark.parametrize("mult,stride,dilation,padding", [(2, (2, 2), (1, 1), "SAME"), (1, (1, 1), (2, 2), "SAME"),
                                                          (3, (2, 1), (1, 1), "VALID")])
def test_depthwise(tmp_path, mult, stride, dilation, padding):
    model = conv_model(tmp_path, "dw", in_shape=(1, 9, 8, 4), k=(3, 3), stride=stride, dilation=dilation,
                       padding=padding, depthwise=True, mult=mult, act="RELU")
    m = check(model, tmp_path, (1, 9, 8, 4))
    assert m["layers"][0]["op"] == "depthwise_conv2d"


# -- fully connected --------------------------------------------------------------------

@pytest.mark.parametrize("semantics,rounding", [("tflite", "away"), ("tflm", "double")])
@pytest.mark.parametrize("fmt", ["dense", "csr", "dcsr"])
def test_fully_connected_roundings_and_formats(tmp_path, semantics, rounding, fmt):
    model = fc_model(tmp_path, "fc", batches=2, sparsity=0.7, act="RELU")
    m = check(model, tmp_path, (2, 40), fmt=fmt, semantics=semantics)
    assert m["semantics"] == semantics and m["layers"][0]["format"] == fmt


def test_fully_connected_rounding_ties_differ(tmp_path):
    """The two roundings give different C for the same model, and each matches its own reference."""
    model = fc_model(tmp_path, "fc", cin=64, cout=64, seed=3)
    outs = {}
    for sem in ("tflite", "tflm"):
        _, r = export_verify(model, tmp_path / sem, semantics=sem, n_inputs=8)
        assert_bit_exact(r)
        outs[sem] = (tmp_path / sem / "headers" / "fully_connected_0.h").read_text()
    assert outs["tflite"] != outs["tflm"]  # single_rounding = 3 vs 0 (and TFLite's float32 product)


def test_fully_connected_no_bias_and_wide_row_ptr(tmp_path):
    # 70,000 nonzeros: CSR row_ptr needs uint32.
    model = fc_model(tmp_path, "fc", cin=350, cout=220, sparsity=0.05, bias=False)
    m = check(model, tmp_path, fmt="csr", min_sparsity=0.0)
    arrays = m["layers"][0]["arrays"]
    assert arrays["dmx_l_fully_connected_0__row_ptr"] == 4 * 221


def test_min_sparsity_keeps_dense_layers_dense(tmp_path):
    model = fc_model(tmp_path, "fc", sparsity=0.3)
    graph_manifest, r = export_verify(model, tmp_path / "out", fmt="dcsr", min_sparsity=0.5)
    layer = graph_manifest["layers"][0]
    assert layer["format"] == "dense" and "min-sparsity" in layer["format_reason"]


# -- elementwise, pooling, shape ---------------------------------------------------------

def _binary(tmp_path, opname, b_shape, act="NONE", in_zp=-128):
    """[1, 4, 5, 6] op a constant b of b_shape (the op tests' binary_model)."""
    m, ins, y = binary_model(opname, (1, 4, 5, 6), b_shape, s=(0.04, 0.03, 0.07 if opname == "ADD" else 0.01),
                             zp=(in_zp, 4, -3), act=act, const_b=True, seed=2)
    return save(tmp_path, opname.lower(), m, ins, [y])


@pytest.mark.parametrize("opname", ["ADD", "MUL"])
@pytest.mark.parametrize("b_shape", [[6], [1], [1, 4, 1, 6], [1, 4, 5, 6]])
def test_binary_broadcasting_with_a_constant(tmp_path, opname, b_shape):
    check(_binary(tmp_path, opname, b_shape, act="RELU6"), tmp_path, (1, 4, 5, 6))


def test_add_of_two_activations_in_place(tmp_path):
    """x -> conv -> add(conv, x): the add writes over the conv output, which dies there."""
    rng = np.random.default_rng(4)
    m = ModelBuilder()
    x = m.tensor("x", [1, 6, 6, 8], scale=0.05, zero_point=-128)
    w = m.tensor("w", [8, 1, 1, 8], scale=np.full(8, 0.01), zero_point=np.zeros(8),
                 data=rand_weights(rng, (8, 1, 1, 8)), axis=0)
    c = m.tensor("c", [1, 6, 6, 8], scale=0.05, zero_point=10)
    m.op("CONV_2D", [x, w, -1], [c], padding="VALID", strideH=1, strideW=1, dilationHFactor=1,
         dilationWFactor=1, fusedActivationFunction="NONE")
    t = m.tensor("t", [1, 6, 6, 8], scale=0.06, zero_point=1)
    m.op("ADD", [c, x], [t], fusedActivationFunction="NONE")
    y = m.tensor("y", [1, 6, 6, 8], scale=0.02, zero_point=0)
    m.op("ADD", [t, t], [y], fusedActivationFunction="RELU")
    manifest = check(save(tmp_path, "res", m, [x], [y]), tmp_path, (1, 6, 6, 8))
    assert manifest["layers"][1]["in_place"]


@pytest.mark.parametrize("opname,act,padding", [("AVERAGE_POOL_2D", "NONE", "SAME"),
                                                ("AVERAGE_POOL_2D", "RELU", "VALID"),
                                                ("MAX_POOL_2D", "RELU6", "SAME"),
                                                ("MAX_POOL_2D", "NONE", "VALID")])
def test_pooling(tmp_path, opname, act, padding):
    m = ModelBuilder()
    x = m.tensor("x", [1, 9, 7, 5], scale=0.05, zero_point=-3)
    oh, ow = _out_hw(9, 3, 2, 1, padding), _out_hw(7, 3, 2, 1, padding)
    y = m.tensor("y", [1, oh, ow, 5], scale=0.05, zero_point=-3)
    m.op(opname, [x], [y], padding=padding, strideH=2, strideW=2, filterHeight=3, filterWidth=3,
         fusedActivationFunction=act)
    check(save(tmp_path, "pool", m, [x], [y]), tmp_path, (1, 9, 7, 5))


@pytest.mark.parametrize("v2", [False, True])
def test_pad(tmp_path, v2):
    m = ModelBuilder()
    x = m.tensor("x", [1, 5, 4, 3], scale=0.05, zero_point=-128)
    pads = m.tensor("p", [4, 2], "int32", data=[[0, 0], [1, 2], [0, 1], [2, 0]])
    y = m.tensor("y", [1, 8, 5, 5], scale=0.05, zero_point=-128)
    if v2:
        v = m.tensor("v", [1], scale=0.05, zero_point=-128, data=[37])
        m.op("PADV2", [x, pads, v], [y])
    else:
        m.op("PAD", [x, pads], [y])
    check(save(tmp_path, "pad", m, [x], [y]), tmp_path, (1, 5, 4, 3))


@pytest.mark.parametrize("opname,axes,keep", [("MEAN", [1, 2], True), ("MEAN", [2], False), ("MEAN", [0, 3], False),
                                              ("REDUCE_MAX", [1, 2], False), ("REDUCE_MAX", [3], True)])
def test_reductions(tmp_path, opname, axes, keep):
    shape = [1, 5, 6, 4]
    m = ModelBuilder()
    x = m.tensor("x", shape, scale=0.05, zero_point=-20)
    ax = m.tensor("axes", [len(axes)], "int32", data=axes)
    out = [1 if i in axes else d for i, d in enumerate(shape)]
    if not keep:
        out = [d for i, d in enumerate(shape) if i not in axes]
    scale = 0.03 if opname == "MEAN" else 0.05
    y = m.tensor("y", out, scale=scale, zero_point=-20 if opname == "REDUCE_MAX" else 9)
    m.op(opname, [x, ax], [y], keepDims=keep)
    check(save(tmp_path, "red", m, [x], [y]), tmp_path, tuple(shape))


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
@pytest.mark.parametrize("shape,beta", [([1, 10], 1.0), ([3, 7], 0.5), ([2, 2, 33], 2.0)])
def test_softmax_both_semantics(tmp_path, semantics, shape, beta):
    m = ModelBuilder()
    x = m.tensor("x", shape, scale=0.09, zero_point=11)
    y = m.tensor("y", shape, scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [x], [y], beta=beta)
    manifest = check(save(tmp_path, "sm", m, [x], [y]), tmp_path, tuple(shape), semantics=semantics)
    want = "dmx_softmax_gemmlowp_s8" if semantics == "tflm" else "dmx_softmax_s8"
    assert manifest["layers"][0]["kernel"] == want


def test_float_io_quantize_requantize_dequantize(tmp_path):
    """float in -> QUANTIZE -> QUANTIZE (int8 requantize) -> DEQUANTIZE -> float out."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 64], "float32")
    q = m.tensor("q", [1, 64], scale=0.02, zero_point=-5)
    m.op("QUANTIZE", [x], [q])
    r = m.tensor("r", [1, 64], scale=0.035, zero_point=17)
    m.op("QUANTIZE", [q], [r])
    y = m.tensor("y", [1, 64], "float32")
    m.op("DEQUANTIZE", [r], [y])
    model = save(tmp_path, "fio", m, [x], [y])
    # Floats beyond the int8 range and exact .5 ties of the quantizer.
    special = np.array([[-1e9, 1e9, 0.01, -0.01, 0.03, -0.03, 0.0, 2.55, -2.46] + [0.5] * 55], dtype=np.float32)
    np.save(tmp_path / "special.npy", special)
    manifest, result = export_verify(model, tmp_path / "out", input_files=[tmp_path / "special.npy"])
    assert_bit_exact(result)
    assert manifest["input"]["ctype"] == "float" and manifest["output"]["ctype"] == "float"
    model_h = (tmp_path / "out" / "model.h").read_text()
    assert "typedef float dmx_input_t;" in model_h and "typedef float dmx_output_t;" in model_h


def test_reshape_aliases_and_copies(tmp_path):
    """reshape first (aliases the caller's input), in the middle (no code) and last (writes the caller's output)."""
    rng = np.random.default_rng(5)
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 2], scale=0.05, zero_point=0)
    s1 = m.tensor("s1", [2], "int32", data=[1, 32])
    f = m.tensor("f", [1, 32], scale=0.05, zero_point=0)
    m.op("RESHAPE", [x, s1], [f], newShape=[1, 32])
    w = m.tensor("w", [8, 32], scale=0.01, zero_point=0, data=rand_weights(rng, (8, 32)))
    h = m.tensor("h", [1, 8], scale=0.1, zero_point=-2)
    m.op("FULLY_CONNECTED", [f, w, -1], [h])
    s2 = m.tensor("s2", [3], "int32", data=[1, 2, 4])
    y = m.tensor("y", [1, 2, 4], scale=0.1, zero_point=-2)
    m.op("RESHAPE", [h, s2], [y], newShape=[1, 2, 4])
    manifest = check(save(tmp_path, "rs", m, [x], [y]), tmp_path, (1, 4, 4, 2))
    storage = {t["name"]: t["storage"] for t in manifest["tensors"]}
    assert storage["f"] == "input" and storage["h"] == storage["y"] == "output"
    assert manifest["arena_size"] == 0
    model_c = (tmp_path / "out" / "model.c").read_text()
    assert "dmx_copy" not in model_c


def test_reshape_from_input_to_output_copies(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 6], scale=0.05, zero_point=0)
    s = m.tensor("s", [2], "int32", data=[2, 3])
    y = m.tensor("y", [2, 3], scale=0.05, zero_point=0)
    m.op("RESHAPE", [x, s], [y], newShape=[2, 3])
    check(save(tmp_path, "copy", m, [x], [y]), tmp_path, (1, 6))
    assert "dmx_copy(in, out, 6);" in (tmp_path / "out" / "model.c").read_text()


# -- ops that only come from the PyTorch frontend (graphs built here, verified on stored vectors) ---

def _graph_with(kind_ops):
    from dmxgen.graph import Graph, QuantParams, Tensor

    q = QuantParams(np.float32(0.05), np.int64(-3))
    g = Graph(source="built-in-test")
    g.add_tensor(Tensor("x", (1, 2, 3, 4), "int8", q))
    g.inputs.append("x")
    kind_ops(g, q, Tensor)
    g.validate()
    return g


@pytest.mark.parametrize("axis", [3, 1, -1])
def test_concat_with_a_constant(tmp_path, axis):
    from dmxgen.targets import export
    from dmxgen.targets import verify_folder
    from dmxgen.graph import Op

    def build(g, q, Tensor):
        c_shape = [1, 2, 3, 4]
        c_shape[axis] = 2
        g.add_tensor(Tensor("c", tuple(c_shape), "int8", q, np.arange(np.prod(c_shape)).reshape(c_shape) % 50 - 20))
        out = [1, 2, 3, 4]
        out[axis] = 2 * out[axis] + 2
        g.add_tensor(Tensor("y", tuple(out), "int8", q))
        g.ops.append(Op("cat", "concat", ["x", "c", "x"], ["y"], {"axis": axis}))
        g.outputs.append("y")

    graph = _graph_with(build)
    manifest = export(graph, tmp_path / "out")
    assert manifest["source"]["path"] is None and manifest["layers"][0]["kernel"] == "dmx_concat_s8"
    result = verify_folder(tmp_path / "out", n_inputs=8)
    assert_bit_exact(result)
    assert result["expected_from"] == "stored"


def test_lut_from_the_graph(tmp_path):
    from dmxgen.targets import export
    from dmxgen.targets import verify_folder
    from dmxgen.graph import Op

    def build(g, q, Tensor):
        g.add_tensor(Tensor("y", (1, 2, 3, 4), "int8", q))
        table = (np.arange(256) * 7 % 256 - 128).astype(np.int8)
        g.ops.append(Op("act", "lut", ["x"], ["y"], {"table": table}))
        g.outputs.append("y")

    export(_graph_with(build), tmp_path / "out")
    assert_bit_exact(verify_folder(tmp_path / "out", n_inputs=8))


def edge_rows_model(tmp_path):
    """Empty rows, a lone nonzero far right (dCSR inserts zeros), clustered columns (deltas past
    the 4-bit nibble: extension masks), a full row, evenly spaced values, rows of 17 and 33 values
    (a last group of one lane) and a random 30% row."""
    from dmxgen import codecs

    rng = np.random.default_rng(5)
    w = np.zeros((9, 300), dtype=np.int8)
    w[1, 299] = 77
    w[2, :20] = np.arange(1, 21)
    w[2, 280:] = -np.arange(1, 21)
    w[3] = np.resize(np.arange(-100, 100, 7), 300)
    w[3, w[3] == 0] = 5
    w[5, ::37] = 3
    w[6, rng.choice(300, 17, replace=False)] = rng.integers(1, 127, 17)
    w[7, rng.choice(300, 33, replace=False)] = -rng.integers(1, 127, 33)
    w[8, rng.random(300) < 0.3] = 100
    enc = codecs.encode("dcsr", w)
    assert enc.meta["masks"] > 0 and enc.meta["inserted_zeros"] > 0
    m = ModelBuilder()
    x = m.tensor("x", [1, 300], scale=0.05, zero_point=9)
    wt = m.tensor("w", [9, 300], scale=0.01, zero_point=0, data=w)
    b = m.tensor("b", [9], "int32", scale=0.0005, zero_point=0, data=[100, -200, 300, -400, 500, 0, 7, -7, 1])
    y = m.tensor("y", [1, 9], scale=0.3, zero_point=0)
    m.op("FULLY_CONNECTED", [x, wt, b], [y])
    return save(tmp_path, "edge", m, [x], [y])


def test_dcsr_and_csr_edge_rows(tmp_path):
    """The sparse kernels read every kind of row of edge_rows_model right."""
    model = edge_rows_model(tmp_path)
    for fmt in ("csr", "dcsr"):
        manifest, result = export_verify(model, tmp_path / fmt, fmt=fmt, min_sparsity=0.0,
                                         input_files=[extremes(tmp_path, (1, 300))])
        assert_bit_exact(result)
        assert manifest["layers"][0]["format"] == fmt
