"""TFLite's int8 elementwise activations as `lut` ops: each table is what the kernel writes for the
256 input codes, computed at load time by the kernel's own algorithm (ops/_int8_tables.py).

LiteRT's reference kernels (the `tflite` semantics) and TFLite Micro's (`tflm`) differ for LOGISTIC
and TANH (LiteRT fills a float table in Prepare, TFLM runs gemmlowp's fixed point), RELU6 (TFLM
clamps the input codes, LiteRT requantizes) and ELU (expm1f against expf - 1). Each mapping
refuses what that Prepare refuses, and operators a runtime lacks (TFLM: NEG, RELU_N1_TO_1,
RELU_0_TO_1 on int8).
"""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph import QuantParams
from ...ops import _int8_tables as T
from ..tflite_registry import tflite_op
from .activations16 import op_logistic16, op_tanh16

LOGISTIC_SCALE = np.float32(1.0 / 256)


def _quant(reader, ins, outs) -> tuple[QuantParams, QuantParams]:
    """The int8 input's and output's per-tensor quantization (one clear line for anything else)."""
    reader._int8_io(ins, outs)
    qs = []
    for name, role in ((ins[0], "input"), (outs[0], "output")):
        q = reader._need_quant(reader.g.tensors[name], role)
        if q.scale.size != 1:
            raise DmxError(f"{role} tensor {name!r} has {q.scale.size} scales; an activation is quantized per tensor")
        qs.append(q)
    return qs[0], qs[1]


def _lut(table: np.ndarray, ins) -> tuple:
    return "lut", {"table": np.asarray(table, dtype=np.int8)}, ins[:1]


def _no_tflm(reader, name: str) -> None:
    if reader.semantics == "tflm":
        raise DmxError(f"TFLite Micro has no int8 {name} kernel (load it with --semantics tflite)")


@tflite_op("LOGISTIC", "lut", "logistic16", inputs=(1, 1))
def op_logistic(reader, op, ins, outs):
    if reader.g.tensors[ins[0]].dtype == "int16":  # TFLite's int16 kernel: activations16.py
        return op_logistic16(reader, op, ins, outs)
    qi, qo = _quant(reader, ins, outs)
    if reader.semantics == "tflm":  # logistic_common.cc: the output zero point only; the scale is taken as 1/256
        if qo.zp != -128:
            raise DmxError(f"output zero point {qo.zp}; TFLite Micro's int8 LOGISTIC writes -128 (scale 1/256)")
        return _lut(T.tflm_logistic(qi.s, qi.zp), ins)
    if np.float32(qo.s) != LOGISTIC_SCALE:  # activations.cc SigmoidPrepare
        raise DmxError(f"output scale {qo.s:g}; LiteRT's int8 LOGISTIC requires 1/256")
    return _lut(T.float_table(T.logistic_float, qi.s, qi.zp, qo.s, qo.zp), ins)


@tflite_op("TANH", "lut", "tanh16", inputs=(1, 1))
def op_tanh(reader, op, ins, outs):
    if reader.g.tensors[ins[0]].dtype == "int16":  # TFLite's int16 kernel: activations16.py
        return op_tanh16(reader, op, ins, outs)
    qi, qo = _quant(reader, ins, outs)
    if reader.semantics == "tflm":  # tanh.cc reads no output quantization: it writes the 1/128, 0 grid
        return _lut(T.tflm_tanh(qi.s, qi.zp), ins)
    return _lut(T.float_table(T.tanh_float, qi.s, qi.zp, qo.s, qo.zp), ins)


@tflite_op("HARD_SWISH", "lut", inputs=(1, 1))
def op_hard_swish(reader, op, ins, outs):
    reader.options(op, tflite.HardSwishOptions)
    qi, qo = _quant(reader, ins, outs)
    if T.hard_swish_params(qi.s, qo.s)["output_exponent"] > 0:  # HardSwishPrepare's TF_LITE_ENSURE
        raise DmxError(f"output scale {qo.s:g} is not above input scale / 128 ({qi.s / 128:g}); TFLite's int8 "
                       "HARD_SWISH needs an output multiplier below 1")
    return _lut(T.hard_swish(qi.s, qi.zp, qo.s, qo.zp), ins)


def _relu(reader, ins, outs, lo: float, hi: float | None):
    qi, qo = _quant(reader, ins, outs)
    return _lut(T.relu_requant(qi.s, qi.zp, qo.s, qo.zp, lo, hi), ins)


@tflite_op("RELU", "lut", inputs=(1, 1))
def op_relu(reader, op, ins, outs):
    return _relu(reader, ins, outs, 0.0, None)


@tflite_op("RELU6", "lut", inputs=(1, 1))
def op_relu6(reader, op, ins, outs):
    if reader.semantics == "tflm":
        qi, _ = _quant(reader, ins, outs)
        return _lut(T.tflm_relu6(qi.s, qi.zp), ins)
    return _relu(reader, ins, outs, 0.0, 6.0)


@tflite_op("RELU_N1_TO_1", "lut", inputs=(1, 1))
def op_relu_n1_to_1(reader, op, ins, outs):
    _no_tflm(reader, "RELU_N1_TO_1")
    return _relu(reader, ins, outs, -1.0, 1.0)


@tflite_op("RELU_0_TO_1", "lut", inputs=(1, 1))
def op_relu_0_to_1(reader, op, ins, outs):
    _no_tflm(reader, "RELU_0_TO_1")
    return _relu(reader, ins, outs, 0.0, 1.0)


@tflite_op("ELU", "lut", inputs=(1, 1))
def op_elu(reader, op, ins, outs):
    qi, qo = _quant(reader, ins, outs)
    transform = T.elu_exp_minus_one if reader.semantics == "tflm" else T.elu_expm1
    return _lut(T.float_table(transform, qi.s, qi.zp, qo.s, qo.zp), ins)


@tflite_op("ABS", "lut", inputs=(1, 1))
def op_abs(reader, op, ins, outs):
    reader.options(op, tflite.AbsOptions)
    qi, qo = _quant(reader, ins, outs)
    return _lut(T.abs_table(qi.s, qi.zp, qo.s, qo.zp), ins)


@tflite_op("RSQRT", "lut", inputs=(1, 1))
def op_rsqrt(reader, op, ins, outs):
    qi, qo = _quant(reader, ins, outs)
    return _lut(T.rsqrt_table(qi.s, qi.zp, qo.s, qo.zp), ins)


@tflite_op("NEG", "lut", inputs=(1, 1))
def op_neg(reader, op, ins, outs):
    reader.options(op, tflite.NegOptions)
    _no_tflm(reader, "NEG")
    _quant(reader, ins, outs)
    return _lut(T.neg_table(), ins)
