"""AVERAGE_POOL_2D and MAX_POOL_2D: windows on one grid (int8 and int16)."""
from __future__ import annotations

import tflite

from ...errors import DmxError
from ..tflite_checks import (check_window, check_work, window_scratch)
from ..tflite_registry import tflite_op
from ..tflite import _padding


def _pool(reader, op, ins, outs, kind):
    reader._int8_io(ins, outs, int16=True)  # int16: TFLite's 16x8 pooling (same sums, rounding, clamps)
    o = reader.options(op, tflite.Pool2DOptions, required=True)
    inp, out = reader._nhwc(ins, outs)
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    if qi.s != qo.s or qi.zp != qo.zp:
        raise DmxError("input and output quantization differ; TFLite requires them equal for pooling")
    kh, kw = o.FilterHeight(), o.FilterWidth()
    check_window("filter size", kh, kw)
    check_window("stride", o.StrideH(), o.StrideW())
    oh, pt, pb = _padding(o.Padding(), inp.shape[1], kh, o.StrideH(), 1)
    ow, pl, pr = _padding(o.Padding(), inp.shape[2], kw, o.StrideW(), 1)
    if (oh, ow) != tuple(out.shape[1:3]):
        raise DmxError(f"output shape {list(out.shape)} does not match the computed spatial size [{oh}, {ow}]")
    attrs = {"filter": (kh, kw), "stride": (o.StrideH(), o.StrideW()), "pad": (pt, pl, pb, pr)}
    check_work(window_scratch(inp.shape, out.shape, kh, kw, inp.shape[3], attrs), out.size * kh * kw)
    attrs.update(reader._act(o.FusedActivationFunction(), out))
    return kind, attrs, ins[:1]


@tflite_op("AVERAGE_POOL_2D", "avg_pool2d", inputs=(1, 1))
def op_average_pool_2d(reader, op, ins, outs):
    return _pool(reader, op, ins, outs, "avg_pool2d")


@tflite_op("MAX_POOL_2D", "max_pool2d", inputs=(1, 1))
def op_max_pool_2d(reader, op, ins, outs):
    return _pool(reader, op, ins, outs, "max_pool2d")
