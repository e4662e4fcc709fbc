"""SUM, SQUARED_DIFFERENCE, L2_NORMALIZATION, LOG_SOFTMAX, ARG_MAX/MIN, REDUCE_MAX/MIN and MEAN: int8 mappings.

Each derives its kind's integer constants from the tensors' scales as the kernel's Prepare does
(the quotients of the float32 scales in double), so the reference and the targets need no float.
"""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph.fixedpoint import quantize_multiplier
from ...graph.quant_params import requant_params, softmax_gemmlowp_params
from ...ops.squared_difference import LEFT_SHIFT
from ..tflite_registry import _ACTNAME, tflite_op

_TYPES = {2: "int32", 4: "int64"}  # the TensorType values an ArgMax/ArgMinOptions output_type may name


def _f64(x) -> float:
    return float(np.float32(x))  # a tensor's scale is a float32; Prepare widens it to double


@tflite_op("SUM", "sum", inputs=(2, 2))
def op_sum(reader, op, ins, outs):
    """TFLite Micro's arithmetic under both semantics: LiteRT's BUILTIN_REF SUM (2.3) reads int8 codes as
    uint8 (-10 sums as 246; tests/ops/test_sum.py, docs/goldens.md)."""
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if inp.dtype != "int8" or out.dtype != "int8":
        raise DmxError(f"SUM of {inp.dtype} -> {out.dtype} is not supported (int8 only)")
    axes = reader._axes(ins)
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    count = int(np.prod([inp.shape[a] for a in axes], dtype=np.int64))
    m, s = quantize_multiplier(_f64(qi.s) / _f64(qo.s))
    return "sum", {"axes": axes, "input_offset": -qi.zp, "output_offset": qo.zp, "count": count,
                   "multiplier": m, "shift": s}, ins[:1]


@tflite_op("SQUARED_DIFFERENCE", "squared_difference", inputs=(2, 2))
def op_squared_difference(reader, op, ins, outs):
    """squared_difference.cc's PrepareQuantized: left shift 7, both inputs onto twice the larger scale,
    the output multiplier (2 max)^2 / (2^14 s_out), all in double."""
    reader._int8_io(ins, outs, 2)
    a, b, out = reader._broadcastable(ins, outs)
    qa, qb, qo = (reader._need_quant(t, "SQUARED_DIFFERENCE") for t in (a, b, out))
    sa, sb, so = _f64(qa.s), _f64(qb.s), _f64(qo.s)
    twice_max = 2.0 * max(sa, sb)
    (m1, s1), (m2, s2) = quantize_multiplier(sa / twice_max), quantize_multiplier(sb / twice_max)
    mo, sho = quantize_multiplier(twice_max * twice_max / ((1 << 2 * LEFT_SHIFT) * so))
    return "squared_difference", {
        "input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp, "left_shift": LEFT_SHIFT,
        "input1_multiplier": m1, "input1_shift": s1, "input2_multiplier": m2, "input2_shift": s2,
        "output_multiplier": mo, "output_shift": sho}, ins[:2]


@tflite_op("L2_NORMALIZATION", "l2_norm", inputs=(1, 1))
def op_l2_norm(reader, op, ins, outs):
    """int8 only, no fused activation, the output on 1/128 with zero point 0, at most 4-D: what LiteRT's
    and TFLite Micro's Prepare demand."""
    reader._int8_io(ins, outs)
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    if np.float32(qo.s) != np.float32(1 / 128) or qo.zp != 0:
        raise DmxError(f"L2_NORMALIZATION output {out.name!r} is quantized with scale {qo.s:g} and zero point "
                       f"{qo.zp}; TFLite requires scale 1/128 and zero point 0")
    o = reader.options(op, tflite.L2NormOptions)
    act = o.FusedActivationFunction() if o else 0
    if act != 0:
        raise DmxError(f"L2_NORMALIZATION with fused activation {_ACTNAME.get(act, act)} is not supported "
                       "(TFLite's kernels take none)")
    if len(inp.shape) > 4:
        raise DmxError(f"L2_NORMALIZATION of a {len(inp.shape)}-D input is not supported (at most 4-D, as TFLite)")
    return "l2_norm", {"input_offset": -qi.zp}, ins[:1]


@tflite_op("LOG_SOFTMAX", "log_softmax", inputs=(1, 1))
def op_log_softmax(reader, op, ins, outs):
    """PreprocessLogSoftmaxScalingExp with beta 1 and 5 integer bits; the output on 16/256, zero point 127,
    as LiteRT's and TFLite Micro's Prepare demand."""
    reader._int8_io(ins, outs)
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    if np.float32(qo.s) != np.float32(16 / 256) or qo.zp != 127:
        raise DmxError(f"LOG_SOFTMAX output {out.name!r} is quantized with scale {qo.s:g} and zero point {qo.zp}; "
                       "TFLite requires scale 16/256 and zero point 127")
    if _f64(qi.s) * (1 << 26) < 1.0:  # QuantizeMultiplierGreaterThanOne aborts in LiteRT and TFLM
        raise DmxError(f"LOG_SOFTMAX input scale {qi.s:g} is below 2^-26, which TFLite cannot prepare")
    p = softmax_gemmlowp_params(1.0, _f64(qi.s))
    rev_m, rev_s = quantize_multiplier((1 << (31 - p["input_left_shift"])) / p["input_multiplier"])
    return "log_softmax", {"input_multiplier": p["input_multiplier"], "input_left_shift": p["input_left_shift"],
                           "reverse_multiplier": rev_m, "reverse_right_shift": -rev_s,
                           "diff_min": p["diff_min"]}, ins[:1]


def _arg_min_max(reader, op, ins, outs, name: str, kind: str, options):
    """int8 codes in, int32 or int64 indices out, one constant axis (int32 or int64)."""
    inp, ax, out = reader.g.tensors[ins[0]], reader.g.tensors[ins[1]], reader.g.tensors[outs[0]]
    if inp.dtype != "int8":
        raise DmxError(f"{name} of {inp.dtype} is not supported (int8 input only)")
    if out.dtype not in ("int32", "int64"):
        raise DmxError(f"{name} output {out.name!r} is {out.dtype}; TFLite writes int32 or int64 indices")
    if reader.semantics == "tflm" and (out.dtype != "int32" or ax.dtype != "int32"):
        raise DmxError(f"{name} with {ax.dtype} axis and {out.dtype} indices: TFLite Micro takes int32 only")
    o = reader.options(op, options)
    if o is not None and _TYPES.get(o.OutputType(), "") != out.dtype:
        raise DmxError(f"{name} output_type {_TYPES.get(o.OutputType(), o.OutputType())} differs from its "
                       f"output tensor's {out.dtype}")
    if ax.data is None or ax.dtype not in ("int32", "int64") or ax.data.size != 1:
        raise DmxError(f"{name} axis {ax.name!r} must be one constant int32 or int64 value")
    rank, axis = len(inp.shape), int(ax.data.reshape(-1)[0])
    if rank == 0 or not -rank <= axis < rank:
        raise DmxError(f"{name} axis {axis} is outside [{-rank}, {rank}) for a {rank}-D input")
    return kind, {"axis": axis % rank}, ins[:1]


@tflite_op("ARG_MAX", "arg_max", inputs=(2, 2))
def op_arg_max(reader, op, ins, outs):
    return _arg_min_max(reader, op, ins, outs, "ARG_MAX", "arg_max", tflite.ArgMaxOptions)


@tflite_op("ARG_MIN", "arg_min", inputs=(2, 2))
def op_arg_min(reader, op, ins, outs):
    return _arg_min_max(reader, op, ins, outs, "ARG_MIN", "arg_min", tflite.ArgMinOptions)


@tflite_op("REDUCE_MAX", "reduce_max", inputs=(2, 2))
def op_reduce_max(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if inp.dtype not in ("int8", "float32") or inp.dtype != out.dtype:
        raise DmxError(f"REDUCE_MAX of {inp.dtype} -> {out.dtype} is not supported")
    if inp.dtype == "int8":
        qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
        if qi.s != qo.s or qi.zp != qo.zp:
            raise DmxError("int8 REDUCE_MAX with different input and output quantization is not supported")
    return "reduce_max", {"axes": reader._axes(ins)}, ins[:1]


@tflite_op("REDUCE_MIN", "reduce_min", inputs=(2, 2))
def op_reduce_min(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if inp.dtype != "int8" or out.dtype != "int8":
        raise DmxError(f"REDUCE_MIN of {inp.dtype} -> {out.dtype} is not supported (int8 only)")
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    if qi.s != qo.s or qi.zp != qo.zp:
        raise DmxError("REDUCE_MIN with different input and output quantization is not supported")
    return "reduce_min", {"axes": reader._axes(ins)}, ins[:1]


@tflite_op("MEAN", "mean", "mean_float", inputs=(2, 2))
def op_mean(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    axes = reader._axes(ins)
    if inp.dtype == "float32":
        return "mean_float", {"axes": axes}, ins[:1]
    reader._int8_io(ins, outs, int16=True)  # int16: TFLite's 16x8 MEAN (the same QuantizedMeanOrSum)
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    count = int(np.prod([inp.shape[a] for a in axes]))
    attrs = {"axes": axes, "input_offset": -qi.zp, "output_offset": qo.zp, "count": count}
    # Prepare: (multiplier, shift) of s_in / s_out. Eval (QuantizedMeanOrSum) folds
    # 1/count into it: shift by floor(log2(count)) (at most 32 and 31 + shift),
    # integer-divide the widened multiplier by count. Checked against LiteRT and TFLM.
    m, s = requant_params(qi.s, qo.s)
    attrs["multiplier"], attrs["shift"] = m, s
    fold = min(count.bit_length() - 1, 32, 31 + s)
    attrs["mean_multiplier"], attrs["mean_shift"] = (m << fold) // count, s - fold
    return "mean", attrs, ins[:1]
