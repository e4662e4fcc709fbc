"""softmax_gemmlowp: TFLite Micro's integer-only int8 softmax over the last axis (gemmlowp fixed point).

Writes int8 probabilities on the grid 1/256, -128, like softmax (TFLite's float-table version).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..graph import fixedpoint as fp
from . import register
from ._checks import same_shape
from ._spec import OpSpec


@dataclass(frozen=True)
class SoftmaxGemmlowpAttrs:
    beta: float
    input_scale: float
    input_multiplier: int  # beta * input_scale in Q5.26
    input_left_shift: int
    diff_min: int  # differences below it give probability 0


@register
class SoftmaxGemmlowp(OpSpec):
    kind = "softmax_gemmlowp"
    summary = "softmax over the last axis (integer gemmlowp, as TFLite Micro)"
    Attrs = SoftmaxGemmlowpAttrs
    targets = ("c", "hls", "tflite", "torch")  # torch: compress/softmax.py (no libm on its path)

    def check(self, op, ins, out):
        return same_shape(ins, out)

    def reference(self, op, args, out_t):
        return fp.softmax_gemmlowp(args[0], op.attrs)
