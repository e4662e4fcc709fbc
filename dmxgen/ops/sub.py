"""sub: TFLite's int8 reference SUB with broadcasting (both inputs rescaled to a common grid).

Not ADD with a negated multiplier: each input is rescaled (and rounded) on its own, then the
two are subtracted, as reference_ops::Sub / BroadcastQuantSubSlow do; the rescales round half
up, so -round(x) and round(-x) differ on ties.
"""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._families import BinarySpec
from ._requant import clamp
from ._select import broadcast_shape
from .add import AddAttrs


@register
class Sub(BinarySpec):
    kind = "sub"
    summary = "elementwise subtract with broadcasting"
    Attrs = AddAttrs  # PrepareGeneralSubOp derives ADD's constants (graph/quant_params.py sub_params)
    targets = ("c", "hls", "tflite", "torch")

    def check(self, op, ins, out):
        a = op.a
        # TFLite rescales with MultiplyByQuantizedMultiplierSmallerThanOneExp: right shifts only
        for name in ("input1_shift", "input2_shift", "output_shift"):
            if getattr(a, name) > 0:
                return f"{name} {getattr(a, name)} is a left shift; TFLite's SUB only rescales down"
        if not 0 <= a.left_shift <= 20:
            return f"left_shift {a.left_shift} is outside 0..20"
        for name in ("input1_offset", "input2_offset"):  # minus an int8 zero point: no int32 overflow below
            if not -128 <= getattr(a, name) <= 128:
                return f"{name} {getattr(a, name)} is not minus an int8 zero point"
        return super().check(op, ins, out)

    def reference(self, op, args, out_t):
        x, y = args
        a = op.a
        s1 = mbqm((x.astype(np.int64) + a.input1_offset) * (1 << a.left_shift), a.input1_multiplier, a.input1_shift)
        s2 = mbqm((y.astype(np.int64) + a.input2_offset) * (1 << a.left_shift), a.input2_multiplier, a.input2_shift)
        raw = mbqm(s1 - s2, a.output_multiplier, a.output_shift) + a.output_offset  # |s1 - s2| < 2**29
        return clamp(np.broadcast_to(raw, out_t.shape), a.act_min, a.act_max, out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        return {"shape": broadcast_shape(graph, op), "in1_offset": a.input1_offset, "in2_offset": a.input2_offset,
                "left_shift": a.left_shift, "in1_mult": a.input1_multiplier, "in1_shift": a.input1_shift,
                "in2_mult": a.input2_multiplier, "in2_shift": a.input2_shift, "out_mult": a.output_multiplier,
                "out_shift": a.output_shift, "out_offset": a.output_offset, "act_min": a.act_min,
                "act_max": a.act_max}
