"""squared_difference: TFLite's int8 SQUARED_DIFFERENCE with broadcasting ((a - b)^2 on the output grid).

As squared_difference.cc: each input widened by 2^7 and rescaled (rounded) on its own to a grid of
twice the larger input scale, the difference squared in int32, one double-rounding requantization.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._families import BinarySpec
from ._requant import saturate
from ._select import broadcast_shape

LEFT_SHIFT = 7  # TFLite's int8 choice: (255 * 2^7)^2 fits an int32


@dataclass(frozen=True)
class SquaredDifferenceAttrs:
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def largest_square(a: SquaredDifferenceAttrs) -> int:
    """The largest (s1 - s2)^2 any pair of int8 codes gives: |code + offset| <= 255 on each side."""
    top = [int(mbqm(255 << a.left_shift, m, s)) for m, s in ((a.input1_multiplier, a.input1_shift),
                                                             (a.input2_multiplier, a.input2_shift))]
    return (top[0] + top[1]) ** 2


@register
class SquaredDifference(BinarySpec):
    kind = "squared_difference"
    summary = "elementwise (a - b)^2 with broadcasting"
    Attrs = SquaredDifferenceAttrs
    targets = ("c", "hls", "tflite")

    def check(self, op, ins, out):
        a = op.a
        for name in ("input1_shift", "input2_shift"):  # MultiplyByQuantizedMultiplierSmallerThanOneExp
            if getattr(a, name) > 0:
                return f"{name} {getattr(a, name)} is a left shift; TFLite only rescales the inputs down"
        if not 0 <= a.left_shift <= 7:
            return f"left_shift {a.left_shift} is outside 0..7"
        for name in ("input1_offset", "input2_offset"):
            if not -128 <= getattr(a, name) <= 128:
                return f"{name} {getattr(a, name)} is not minus an int8 zero point"
        if not -31 <= a.output_shift <= 30 or largest_square(a) << max(a.output_shift, 0) >= 1 << 31:
            return (f"output_shift {a.output_shift} overflows int32 on the largest square {largest_square(a)} "
                    "(an output scale far too small for its inputs)")
        return super().check(op, ins, out)

    def reference(self, op, args, out_t):
        x, y = args
        a = op.a
        s1 = mbqm((x.astype(np.int64) + a.input1_offset) << a.left_shift, a.input1_multiplier, a.input1_shift)
        s2 = mbqm((y.astype(np.int64) + a.input2_offset) << a.left_shift, a.input2_multiplier, a.input2_shift)
        d = s1 - s2  # |d| < 2^15.5: the square fits an int32 (check)
        raw = mbqm(d * d, a.output_multiplier, a.output_shift) + a.output_offset
        return saturate(np.broadcast_to(raw, out_t.shape), out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        return {"shape": broadcast_shape(graph, op), "in1_offset": a.input1_offset, "in2_offset": a.input2_offset,
                "left_shift": a.left_shift, "in1_mult": a.input1_multiplier, "in1_shift": a.input1_shift,
                "in2_mult": a.input2_multiplier, "in2_shift": a.input2_shift, "out_mult": a.output_multiplier,
                "out_shift": a.output_shift, "out_offset": a.output_offset}
