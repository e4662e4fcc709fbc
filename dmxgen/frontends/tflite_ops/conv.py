"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV: the weighted operators (int8, and int16 16x8)."""
from __future__ import annotations

import tflite

from ...errors import DmxError
from ..tflite_checks import (check_weights, check_window, check_work, window_scratch)
from ..tflite_16x8 import rounding_16x8
from ..tflite_registry import tflite_op
from ..tflite import _padding


@tflite_op("CONV_2D", "conv2d", inputs=(2, 3))
def op_conv_2d(reader, op, ins, outs):
    reader._int8_io(ins, outs, int16=True)  # int16: TFLite's 16x8 (tflite_16x8.py)
    o = reader.options(op, tflite.Conv2DOptions, required=True)
    w = reader.g.tensors[ins[1]]
    check_weights(w)
    if len(w.shape) != 4:
        raise DmxError(f"weight {w.name!r} must be a constant OHWI tensor")
    cout, kh, kw, cin = w.shape
    inp, out = reader._nhwc(ins, outs)
    if inp.shape[3] % cin != 0:
        raise DmxError(f"input has {inp.shape[3]} channels, weights expect a multiple of {cin}")
    if inp.shape[3] != cin:
        raise DmxError(f"grouped convolution ({inp.shape[3]} input channels, {cin} per group) is not supported")
    attrs = reader._conv_common(ins, outs, o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor(),
                                o.Padding(), kh, kw)
    check_work(window_scratch(inp.shape, out.shape, kh, kw, cin, attrs), out.size * kh * kw * cin)
    attrs["multiplier"], attrs["shift"] = reader._channel_multipliers(inp, w, reader.g.tensors[outs[0]], cout)
    attrs.update(reader._act(o.FusedActivationFunction(), reader.g.tensors[outs[0]]))
    attrs.update(reader._16x8("CONV_2D", ins, 0, attrs, o))
    return "conv2d", attrs, reader._bias(ins, cout)


@tflite_op("DEPTHWISE_CONV_2D", "depthwise_conv2d", inputs=(2, 3))
def op_depthwise_conv_2d(reader, op, ins, outs):
    reader._int8_io(ins, outs, int16=True)
    o = reader.options(op, tflite.DepthwiseConv2DOptions, required=True)
    w = reader.g.tensors[ins[1]]
    check_weights(w)
    if len(w.shape) != 4 or w.shape[0] != 1:
        raise DmxError(f"weight {w.name!r} must be a constant [1, kh, kw, C*multiplier] tensor")
    _, kh, kw, cout = w.shape
    inp, out = reader._nhwc(ins, outs)
    cin = inp.shape[3]
    if cout % cin != 0:
        raise DmxError(f"{cout} output channels is not a multiple of {cin} input channels")
    attrs = reader._conv_common(ins, outs, o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor(),
                                o.Padding(), kh, kw)
    check_work(window_scratch(inp.shape, out.shape, kh, kw, cout, attrs), out.size * kh * kw)
    attrs["depth_multiplier"] = cout // cin
    attrs["multiplier"], attrs["shift"] = reader._channel_multipliers(inp, w, reader.g.tensors[outs[0]], cout, axis=3)
    attrs.update(reader._act(o.FusedActivationFunction(), reader.g.tensors[outs[0]]))
    attrs.update(reader._16x8("DEPTHWISE_CONV_2D", ins, 3, attrs, None))  # its options have no bias type
    return "depthwise_conv2d", attrs, reader._bias(ins, cout)


@tflite_op("FULLY_CONNECTED", "fully_connected", inputs=(2, 3))
def op_fully_connected(reader, op, ins, outs):
    reader._int8_io(ins, outs, int16=True)
    o = reader.options(op, tflite.FullyConnectedOptions)
    w = reader.g.tensors[ins[1]]
    check_weights(w)
    if len(w.shape) != 2:
        raise DmxError(f"weight {w.name!r} must be a constant [out, in] matrix")
    if o is not None and o.WeightsFormat() != 0:
        raise DmxError("shuffled FULLY_CONNECTED weights are not supported")
    cout, cin = w.shape
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if inp.size % cin != 0:
        raise DmxError(f"input of {inp.size} values is not a multiple of the weights' {cin} columns")
    check_work(0, inp.size * cout)
    attrs = {"input_offset": -reader._need_quant(inp, "input").zp,
             "output_offset": reader._need_quant(out, "output").zp,
             "batches": inp.size // cin,
             # LiteRT's reference FC rounds once, ties away from zero; TFLite Micro's twice (docs/goldens.md).
             "rounding": "away" if reader.semantics == "tflite" else "double"}
    attrs["multiplier"], attrs["shift"] = reader._channel_multipliers(inp, w, out, cout)
    attrs.update(reader._act(o.FusedActivationFunction() if o else 0, out))
    attrs.update(reader._16x8("FULLY_CONNECTED", ins, 0, attrs, o))
    return "fully_connected", attrs, reader._bias(ins, cout)


@tflite_op("TRANSPOSE_CONV", "transpose_conv", inputs=(3, 4))
def op_transpose_conv(reader, op, ins, outs):
    shape, wname, x = ins[0], ins[1], ins[2]
    reader._int8_io([x], outs, int16=True)  # int16: TFLite's 16x8 (int64 bias and accumulators)
    o = reader.options(op, tflite.TransposeConvOptions, required=True)
    w = reader.g.tensors[wname]
    check_weights(w)
    if len(w.shape) != 4:
        raise DmxError(f"weight {w.name!r} must be a constant OHWI tensor")
    cout, kh, kw, cin = w.shape
    inp, out = reader._nhwc([x], outs)
    if inp.shape[3] != cin:
        raise DmxError(f"input has {inp.shape[3]} channels, weights expect {cin}")
    if out.shape[3] != cout or out.shape[0] != inp.shape[0]:
        raise DmxError(f"output shape {list(out.shape)} should have batch {inp.shape[0]} and {cout} channels")
    reader._const_size(shape, "output_shape", out.shape)
    check_window("stride", o.StrideH(), o.StrideW())
    check_window("filter size", kh, kw)
    # Prepare: the padding of the forward conv from the output's size (ComputePaddingHeightWidth);
    # the kernel offsets the scatter by its "before" half only.
    want_h, pt, _ = _padding(o.Padding(), out.shape[1], kh, o.StrideH(), 1)
    want_w, pl, _ = _padding(o.Padding(), out.shape[2], kw, o.StrideW(), 1)
    if reader.semantics == "tflite" and (want_h, want_w) != inp.shape[1:3]:  # LiteRT's Prepare; TFLM runs it
        raise DmxError(f"input {list(inp.shape)} should be {want_h}x{want_w} for output_shape "
                       f"{list(out.shape)} with this padding and stride (LiteRT refuses it; TFLite Micro "
                       "runs it: --semantics tflm)")
    check_work(out.size * 8 + inp.size // cin * cout * 8, inp.size * kh * kw * cout)
    attrs = {"stride": (o.StrideH(), o.StrideW()), "pad": (pt, pl),
             "input_offset": -reader._need_quant(inp, "input").zp,
             "output_offset": reader._need_quant(out, "output").zp}
    attrs["multiplier"], attrs["shift"] = reader._channel_multipliers(inp, w, out, cout)
    attrs.update(reader._act(o.FusedActivationFunction(), out))
    bias = reader._bias([x, wname] + ins[3:4], cout)
    if inp.dtype == "int16":  # the int64 bias, accumulator bound and shifts of tflite_16x8 (rounding: reduced)
        b = reader.g.tensors[bias[2]] if bias[2] else None
        if b is not None and b.dtype != "int64":  # LiteRT runs it, on garbage: the kernel reads int64
            raise DmxError(f"bias {b.name!r} of a 16x8 TRANSPOSE_CONV is {b.dtype}; LiteRT and TFLite Micro "
                           "read it as int64: it must be int64")
        rounding_16x8("TRANSPOSE_CONV", w, b, 0, attrs["shift"], reader.semantics)
    return "transpose_conv", attrs, bias
