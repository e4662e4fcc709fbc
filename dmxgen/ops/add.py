"""add: TFLite's int8 reference ADD with broadcasting (both inputs rescaled to a common grid)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import _wrap32, multiply_by_quantized_multiplier as mbqm
from . import register
from ._families import BinarySpec
from ._requant import clamp


@dataclass(frozen=True)
class AddAttrs:
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int  # 20: both inputs are widened before rescaling
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    activation: str
    act_min: int
    act_max: int


@register
class Add(BinarySpec):
    kind = "add"
    summary = "elementwise add with broadcasting"
    Attrs = AddAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")

    def reference(self, op, args, out_t):
        x, y = args
        a = op.a
        x1 = (x.astype(np.int64) + a.input1_offset) * (1 << a.left_shift)
        x2 = (y.astype(np.int64) + a.input2_offset) * (1 << a.left_shift)
        s1 = mbqm(x1, a.input1_multiplier, a.input1_shift)
        s2 = mbqm(x2, a.input2_multiplier, a.input2_shift)
        raw = mbqm(_wrap32(s1 + s2), a.output_multiplier, a.output_shift) + a.output_offset
        return clamp(np.broadcast_to(raw, out_t.shape), a.act_min, a.act_max, out_t.dtype)
