"""affine: y = requant((x + input_offset) * w_c + b_c) per channel c, the channel being the last dim.

The integer form of a per-channel scale and shift: a BatchNorm that cannot be folded into a
Linear/Conv (after an add, on a tensor with several users, before a ReLU and a conv), ResMLP's
learned `alpha * x + beta`. It is a depthwise 1x1 convolution in all but name, so it requantizes as
TFLite's per-channel conv does: an int32 accumulator (bias in the scale s_in * s_w_c), one
multiplier and shift per channel from s_in * s_w_c / s_out (graph/quant_params.py
conv_multipliers), MultiplyByQuantizedMultiplier's double rounding, the output offset and the
clamp of a fused activation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import INT32_MAX
from . import register
from ._checks import same_shape
from ._requant import requantize
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class AffineAttrs:
    input_offset: int  # -zero point of the input
    output_offset: int
    weight: Ints  # one integer code per channel (int8, or int16 with weight_bits=16)
    bias: Ints  # one int32 per channel, in the accumulator's scale s_in * s_w_c
    multiplier: Ints  # per channel: s_in * s_w_c / s_out
    shift: Ints
    activation: str
    act_min: int
    act_max: int
    weight_bits: int = 8


def _channel_problem(a: AffineAttrs, channels: int) -> str | None:
    """Per-channel lengths, code ranges and the int32 accumulator's headroom."""
    lengths = {name: np.size(getattr(a, name)) for name in ("weight", "bias", "multiplier", "shift")}
    wrong = [f"{name} has {n}" for name, n in lengths.items() if n != channels]
    if wrong:
        return f"{', '.join(wrong)} values for the last dim's {channels} channels"
    if a.weight_bits not in (8, 16):
        return f"weight_bits={a.weight_bits}; affine weights are int8 or int16"
    w, b = np.asarray(a.weight, np.int64), np.asarray(a.bias, np.int64)
    wmax = (1 << (a.weight_bits - 1)) - 1
    if np.abs(w).max() > wmax:
        return f"weight code {int(w[np.abs(w).argmax()])} does not fit int{a.weight_bits}"
    x_max = max(abs(-128 + a.input_offset), abs(127 + a.input_offset))
    if (np.abs(w) * x_max + np.abs(b)).max() > INT32_MAX:
        return "a channel's accumulator (input * weight + bias) can overflow int32 (a bias far too large)"
    return None


@register
class Affine(OpSpec):
    kind = "affine"
    summary = "per-channel integer scale and shift (an unfolded BatchNorm, a learned affine)"
    Attrs = AffineAttrs
    targets = ("c", "c_mve", "hls", "torch")

    def inplace(self, op) -> bool:
        return True  # one value in, one value out, same bytes per value

    def check(self, op, ins, out):
        return same_shape(ins, out) or _channel_problem(op.a, out.shape[-1] if out.shape else 1)

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64) + a.input_offset
        acc = x * np.asarray(a.weight, np.int64) + np.asarray(a.bias, np.int64)
        return requantize(acc, a, out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        out = graph.tensors[op.outputs[0]]
        channels = int(np.size(a.weight))
        return {"outer": out.size // channels, "channels": channels, "input_offset": a.input_offset,
                "output_offset": a.output_offset, "act_min": a.act_min, "act_max": a.act_max,
                "weight": np.asarray(a.weight, np.int16), "bias": np.asarray(a.bias, np.int32),
                "mult": np.asarray(a.multiplier, np.int32), "shift": np.asarray(a.shift, np.int32)}
