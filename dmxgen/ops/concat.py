"""concat: concatenation along `axis` of int8 tensors that share one scale and zero point."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._spec import ACTIVATION, OpSpec


@dataclass(frozen=True)
class ConcatAttrs:
    axis: int  # non-negative


@register
class Concat(OpSpec):
    kind = "concat"
    summary = "concatenation along `axis` of int8 tensors that share one scale and zero point"
    Attrs = ConcatAttrs
    targets = ("c", "torch")
    inputs = (ACTIVATION,)
    variadic = True

    def check(self, op, ins, out):
        axis = op.a.axis
        if any(len(t.shape) != len(out.shape) for t in ins):
            return "inputs and output differ in rank"
        if sum(t.shape[axis] for t in ins) != out.shape[axis]:
            return f"input sizes along axis {axis} do not add up to the output's {out.shape[axis]}"
        q = out.quant
        for t in ins:
            if t.quant is not None and q is not None and (t.quant.s, t.quant.zp) != (q.s, q.zp):
                return f"input {t.name!r} is on a different grid than the output"
        return None

    def reference(self, op, args, out_t):
        return np.concatenate(list(args), axis=op.a.axis)
