"""mul: TFLite's int8 reference MUL with broadcasting (int16 / 16x8: the same arithmetic on int16 codes)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._families import BinarySpec
from ._requant import clamp


@dataclass(frozen=True)
class MulAttrs:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int  # s1 * s2 / s_out
    output_shift: int
    activation: str
    act_min: int
    act_max: int


@register
class Mul(BinarySpec):
    kind = "mul"
    summary = "elementwise multiply with broadcasting"
    Attrs = MulAttrs
    targets = ("c", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: zero points 0, so the product of two codes fits int32

    def reference(self, op, args, out_t):
        x, y = args
        a = op.a
        prod = (x.astype(np.int64) + a.input1_offset) * (y.astype(np.int64) + a.input2_offset)
        raw = mbqm(prod, a.output_multiplier, a.output_shift) + a.output_offset
        return clamp(np.broadcast_to(raw, out_t.shape), a.act_min, a.act_max, out_t.dtype)
