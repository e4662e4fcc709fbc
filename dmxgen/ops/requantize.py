"""requantize: int8 or int16 codes onto another scale, zero point and dtype (TFLite's QUANTIZE of an integer input)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier
from . import register
from ._checks import same_shape
from ._requant import saturate
from ._spec import OpSpec


@dataclass(frozen=True)
class RequantizeAttrs:
    input_offset: int  # -zero point of the input
    output_offset: int
    multiplier: int  # s_in / s_out
    shift: int


@register
class Requantize(OpSpec):
    kind = "requantize"
    summary = "int8 or int16 -> int8 or int16 onto another grid"
    dtypes = ("int8", "int16")
    Attrs = RequantizeAttrs
    targets = ("c", "hls", "tflite", "torch")

    def inplace(self, op) -> bool:
        return True  # one value in, one value out (the planner also wants the same bytes: not int8 -> int16)

    def check(self, op, ins, out):
        return same_shape(ins, out)

    def reference(self, op, args, out_t):
        a = op.a
        acc = multiply_by_quantized_multiplier(args[0].astype(np.int64) + a.input_offset, a.multiplier, a.shift)
        return saturate(acc + a.output_offset, out_t.dtype)
