"""QUANTIZE and DEQUANTIZE: between grids and dtypes (int8, int16, float32 at the edges)."""
from __future__ import annotations


from ...errors import DmxError
from ...graph.quant_params import (requant_params)
from ..tflite_registry import tflite_op


@tflite_op("QUANTIZE", "quantize", "requantize", inputs=(1, 1))
def op_quantize(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if out.dtype not in ("int8", "int16"):
        raise DmxError(f"QUANTIZE to {out.dtype} is not supported, only to int8 or int16")
    qo = reader._need_quant(out, "output")
    if qo.per_channel:
        raise DmxError("per-channel QUANTIZE is not supported")
    if inp.dtype == "float32":
        return "quantize", {"scale": float(qo.s), "zero_point": qo.zp}, ins[:1]
    if inp.dtype in ("int8", "int16"):
        qi = reader._need_quant(inp, "input")
        m, s = requant_params(qi.s, qo.s)
        return "requantize", {"input_offset": -qi.zp, "output_offset": qo.zp, "multiplier": m, "shift": s}, ins[:1]
    raise DmxError(f"QUANTIZE from {inp.dtype} is not supported (float32, int8 or int16)")


@tflite_op("DEQUANTIZE", "dequantize", inputs=(1, 1))
def op_dequantize(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if inp.dtype not in ("int8", "int16") or out.dtype != "float32":
        raise DmxError(f"DEQUANTIZE {inp.dtype} -> {out.dtype} is not supported, only int8 or int16 -> float32")
    qi = reader._need_quant(inp, "input")
    if qi.per_channel:
        raise DmxError("per-channel DEQUANTIZE is not supported")
    return "dequantize", {"scale": float(qi.s), "zero_point": qi.zp}, ins[:1]
