"""sub: TFLite's int8 reference SUB with broadcasting (both inputs rescaled to a common grid).

Not ADD with a negated multiplier: each input is rescaled (and rounded) on its own, then the
two are subtracted, as reference_ops::Sub / BroadcastQuantSubSlow do; the rescales round half
up, so -round(x) and round(-x) differ on ties. int16 (16x8): left shift 15, or the power-of-two
path (`scaling="pot"`, add.py).
"""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._families import BinarySpec
from ._requant import clamp
from ._select import broadcast_shape
from .add import AddAttrs, kernel_constants, pot_operands


@register
class Sub(BinarySpec):
    kind = "sub"
    summary = "elementwise subtract with broadcasting"
    Attrs = AddAttrs  # PrepareGeneralSubOp derives ADD's constants (graph/quant_params.py sub_params)
    targets = ("c", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: TFLite's 16x8 SUB

    def check(self, op, ins, out):
        a = op.a
        if a.scaling == "pot":
            if out.dtype != "int16":
                return f"scaling 'pot' is TFLite's int16 path; the output is {out.dtype}"
            if min(a.input1_shift, a.input2_shift) < -15:
                return f"power-of-two shifts {a.input1_shift}, {a.input2_shift}: LiteRT's int16 path shifts by at most 15"
            if not (a.input1_shift == 0 or a.input2_shift == 0):
                return f"power-of-two shifts {a.input1_shift}, {a.input2_shift}: one must be 0"
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
        if a.scaling == "pot":
            p, q = pot_operands(x, y, a)
            return clamp(np.broadcast_to(p - q, out_t.shape), a.act_min, a.act_max, out_t.dtype)
        s1 = mbqm((x.astype(np.int64) + a.input1_offset) * (1 << a.left_shift), a.input1_multiplier, a.input1_shift)
        s2 = mbqm((y.astype(np.int64) + a.input2_offset) * (1 << a.left_shift), a.input2_multiplier, a.input2_shift)
        raw = mbqm(s1 - s2, a.output_multiplier, a.output_shift) + a.output_offset  # |s1 - s2| < 2**29
        return clamp(np.broadcast_to(raw, out_t.shape), a.act_min, a.act_max, out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        return {"shape": broadcast_shape(graph, op), **kernel_constants(a), "act_min": a.act_min,
                "act_max": a.act_max}
