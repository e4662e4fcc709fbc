"""ADD, MUL, SUB, MAXIMUM and MINIMUM: two broadcast inputs, one output (int8; ADD, MUL, SUB also int16)."""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph.quant_params import (ADD_LEFT_SHIFT_INT16, add_params, mul_params,
                                   pot_int16_shifts, sub_params)
from ..tflite_registry import tflite_op


def _add_sub_scaling(reader, opname, o, a, b, out, params) -> dict:
    """ADD / SUB rescaling constants. int16: the general path with left shift 15, or LiteRT's
    power-of-two path when pot_scale_int16 is set (the schema's default) and every scale is a
    power of two (add.cc, sub.cc); TFLite Micro always takes the general path."""
    qa, qb, qo = a.quant, b.quant, out.quant
    if out.dtype != "int16":
        return params(qa.s, qb.s, qo.s)
    shifts = None
    if reader.semantics == "tflite" and o is not None and o.PotScaleInt16():
        shifts = pot_int16_shifts(qa.s, qb.s, qo.s, opname)
    if shifts is None:
        general = params(qa.s, qb.s, qo.s, left_shift=ADD_LEFT_SHIFT_INT16)
        if general["output_shift"] > 0:  # QuantizeMultiplierSmallerThanOneExp aborts (SUB's refuses earlier)
            raise DmxError(f"int16 {opname} output scale {qo.s:g} is too small for input scales {qa.s:g} and "
                           f"{qb.s:g}: the output multiplier is not below 1, which TFLite cannot compute")
        return general
    if opname == "ADD" and a.shape != b.shape:  # add.cc runs reference_ops::Add, elementwise only
        raise DmxError("LiteRT's int16 ADD with power-of-two scales (pot_scale_int16) does not broadcast "
                       f"{list(a.shape)} and {list(b.shape)}")
    return {"scaling": "pot", "left_shift": 0, "input1_multiplier": 0, "input2_multiplier": 0,
            "output_multiplier": 0, "output_shift": 0, **shifts}


@tflite_op("ADD", "add", inputs=(2, 2))
def op_add(reader, op, ins, outs):
    reader._int8_io(ins, outs, 2, int16=True)  # int16: TFLite's 16x8 ADD
    a, b, out = reader._broadcastable(ins, outs)
    qa, qb, qo = (reader._need_quant(t, "ADD") for t in (a, b, out))
    o = reader.options(op, tflite.AddOptions)
    attrs = {"input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp,
             **_add_sub_scaling(reader, "ADD", o, a, b, out, add_params)}
    attrs.update(reader._act(o.FusedActivationFunction() if o else 0, out))
    return "add", attrs, ins[:2]


@tflite_op("MUL", "mul", inputs=(2, 2))
def op_mul(reader, op, ins, outs):
    reader._int8_io(ins, outs, 2, int16=True)  # int16: TFLite's 16x8 MUL (the same arithmetic)
    a, b, out = reader._broadcastable(ins, outs)
    qa, qb, qo = (reader._need_quant(t, "MUL") for t in (a, b, out))
    o = reader.options(op, tflite.MulOptions)
    attrs = {"input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp,
             **mul_params(qa.s, qb.s, qo.s, float32_product=reader.semantics == "tflite")}
    if out.dtype == "int16" and attrs["output_shift"] > 0:  # a left shift of a product up to 2^30
        raise DmxError(f"int16 MUL multiplier {qa.s * qb.s / qo.s:g} is 1 or more: TFLite shifts the product "
                       "of two int16 codes left, which overflows int32")
    attrs.update(reader._act(o.FusedActivationFunction() if o else 0, out))
    return "mul", attrs, ins[:2]


@tflite_op("SUB", "sub", inputs=(2, 2))
def op_sub(reader, op, ins, outs):
    reader._int8_io(ins, outs, 2, int16=True)  # int16: TFLite's 16x8 SUB
    a, b, out = reader._broadcastable(ins, outs)
    qa, qb, qo = (reader._need_quant(t, "SUB") for t in (a, b, out))
    o = reader.options(op, tflite.SubOptions)  # pot_scale_int16 concerns int16 SUB only
    attrs = {"input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp,
             **_add_sub_scaling(reader, "SUB", o, a, b, out, sub_params)}
    attrs.update(reader._act(o.FusedActivationFunction() if o else 0, out))
    return "sub", attrs, ins[:2]


@tflite_op("MAXIMUM", "maximum", inputs=(2, 2))
def op_maximum(reader, op, ins, outs):
    return _select(reader, op, ins, outs, "maximum")


@tflite_op("MINIMUM", "minimum", inputs=(2, 2))
def op_minimum(reader, op, ins, outs):
    return _select(reader, op, ins, outs, "minimum")


def _select(reader, op, ins, outs, kind):
    """MAXIMUM / MINIMUM compare codes: TFLite gives the output the inputs' grid, so all three must agree."""
    reader._int8_io(ins, outs, 2)
    reader.options(op, tflite.MaximumMinimumOptions)  # an empty table; another type is refused
    a, b, out = reader._broadcastable(ins, outs)
    qs = [reader._need_quant(t, kind.upper()) for t in (a, b, out)]
    if any(q.per_channel for q in qs) or len({(np.float32(q.s), q.zp) for q in qs}) != 1:
        raise DmxError(f"{kind.upper()} needs its inputs and output on one quantization grid, got "
                       f"{qs[0].describe()}, {qs[1].describe()} -> {qs[2].describe()}")
    return kind, {}, ins[:2]
