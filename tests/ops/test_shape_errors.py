"""An op whose output shape does not follow from its inputs: one DmxError naming the op and the tensor."""
from __future__ import annotations

import re

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder


def _conv(m, x_shape, w_shape, y_shape, opname="CONV_2D", **opts):
    x = m.tensor("x", x_shape, scale=0.1, zero_point=0)
    w = m.tensor("w", w_shape, scale=0.01, zero_point=0, data=np.ones(w_shape))
    cout = w_shape[0] if opname == "CONV_2D" else w_shape[3]
    b = m.tensor("b", [cout], "int32", scale=0.001, zero_point=0, data=np.zeros(cout))
    y = m.tensor("y", y_shape, scale=0.1, zero_point=0)
    m.op(opname, [x, w, b], [y], padding="SAME", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1, **opts)


def _unary(m, opname, x_shape, y_shape, in_dtype="int8", out_dtype="int8", extra=(), **opts):
    q = {"scale": 1 / 256, "zero_point": -128}
    x = m.tensor("x", x_shape, in_dtype, **(q if in_dtype == "int8" else {}))
    ins = [x] + [m.tensor(name, [len(v)], "int32", data=v) for name, v in extra]
    y = m.tensor("y", y_shape, out_dtype, **(q if out_dtype == "int8" else {}))
    m.op(opname, ins, [y], **opts)


def _binary(m, opname, a_shape, b_shape, y_shape):
    a = m.tensor("a", a_shape, scale=0.1, zero_point=0)
    b = m.tensor("b", b_shape, scale=0.1, zero_point=0)
    m.op(opname, [a, b], [m.tensor("y", y_shape, scale=0.1, zero_point=0)])


def _fc(m, x_shape, y_shape, keep=False):
    x = m.tensor("x", x_shape, scale=0.1, zero_point=0)
    w = m.tensor("w", [4, 8], scale=0.01, zero_point=0, data=np.ones((4, 8)))
    m.op("FULLY_CONNECTED", [x, w, -1], [m.tensor("y", y_shape, scale=0.1, zero_point=0)], keepNumDims=keep)


POOL = {"padding": "VALID", "strideH": 2, "strideW": 2, "filterHeight": 2, "filterWidth": 2}

BROKEN = {
    "conv2d_spatial": (lambda m: _conv(m, [1, 6, 6, 3], [4, 3, 3, 3], [1, 5, 6, 4]), "conv2d"),
    "conv2d_channels": (lambda m: _conv(m, [1, 6, 6, 3], [4, 3, 3, 3], [1, 6, 6, 5]), "conv2d"),
    "conv2d_batch": (lambda m: _conv(m, [2, 6, 6, 3], [4, 3, 3, 3], [1, 6, 6, 4]), "conv2d"),
    "depthwise_channels": (lambda m: _conv(m, [1, 6, 6, 3], [1, 3, 3, 6], [1, 6, 6, 3], "DEPTHWISE_CONV_2D",
                                           depthMultiplier=2), "depthwiseconv2d"),
    "fc_size": (lambda m: _fc(m, [2, 8], [2, 5]), "fullyconnected"),
    "fc_transposed": (lambda m: _fc(m, [2, 8], [4, 2]), "fullyconnected"),
    "fc_keep_num_dims": (lambda m: _fc(m, [1, 2, 8], [1, 2, 5], keep=True), "fullyconnected"),
    "add_broadcast": (lambda m: _binary(m, "ADD", [1, 4, 4, 3], [1, 1, 1, 3], [1, 4, 4, 1]), "add"),
    "add_no_broadcast": (lambda m: _binary(m, "ADD", [1, 4, 4, 3], [1, 1, 2, 3], [1, 4, 4, 3]), "add"),
    "mul_rank": (lambda m: _binary(m, "MUL", [4, 3], [3], [1, 4, 3]), "mul"),
    "avg_pool_spatial": (lambda m: _unary(m, "AVERAGE_POOL_2D", [1, 6, 6, 2], [1, 2, 3, 2], **POOL), "averagepool2d"),
    "max_pool_channels": (lambda m: _unary(m, "MAX_POOL_2D", [1, 6, 6, 2], [1, 3, 3, 4], **POOL), "maxpool2d"),
    "reshape_count": (lambda m: _unary(m, "RESHAPE", [1, 6, 2], [1, 13], newShape=[1, 13]), "reshape"),
    "softmax_size": (lambda m: _unary(m, "SOFTMAX", [2, 5], [2, 6], beta=1.0), "softmax"),
    "softmax_transposed": (lambda m: _unary(m, "SOFTMAX", [2, 5], [5, 2], beta=1.0), "softmax"),
    "quantize_shape": (lambda m: _unary(m, "QUANTIZE", [2, 5], [5, 2], "float32"), "quantize"),
    "dequantize_size": (lambda m: _unary(m, "DEQUANTIZE", [2, 5], [11], "int8", "float32"), "dequantize"),
    "pad_shape": (lambda m: _unary(m, "PAD", [1, 3, 3, 2], [1, 5, 5, 3],
                                   extra=[("paddings", [0, 0, 1, 1, 1, 1, 0, 0])]), "pad"),
    "mean_shape": (lambda m: _unary(m, "MEAN", [1, 4, 4, 3], [1, 4], extra=[("axes", [1, 2])], keepDims=False),
                   "mean"),
    "reduce_max_shape": (lambda m: _unary(m, "REDUCE_MAX", [1, 4, 4, 3], [1, 1, 1, 4], extra=[("axes", [1, 2])],
                                          keepDims=True), "reducemax"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_inconsistent_output_shape_names_op_and_tensor(tmp_path, case):
    build, op = BROKEN[case]
    m = ModelBuilder()
    build(m)
    path = m.save(tmp_path / f"{case}.tflite", [0], [len(m.sg.tensors) - 1])
    with pytest.raises(DmxError) as e:
        load_tflite(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert op in re.sub(r"[_ ]", "", msg.lower()), msg
    assert "'y'" in msg, msg
