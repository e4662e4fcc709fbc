"""concat: concatenation along `axis` of int8 tensors that share one scale and zero point.

Moves bytes only (TFLite CONCATENATION, torch.cat): every target runs one strided copy per
input into the output at its offset along `axis` (graph/loops.py `concat`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import loops
from . import register
from ._spec import ACTIVATION, OpSpec


@dataclass(frozen=True)
class ConcatAttrs:
    axis: int  # an input dim; negative counts from the last


@register
class Concat(OpSpec):
    kind = "concat"
    summary = "concatenation along `axis` of int8 tensors that share one scale and zero point"
    Attrs = ConcatAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # codes are moved, whatever their width
    mve_dtypes = dtypes
    inputs = (ACTIVATION,)
    variadic = True

    def check(self, op, ins, out):
        axis = op.a.axis
        if any(len(t.shape) != len(out.shape) for t in ins):
            return "inputs and output differ in rank"
        if not -len(out.shape) <= axis < len(out.shape):
            return f"axis {axis} is outside the {len(out.shape)} dims"
        if sum(t.shape[axis] for t in ins) != out.shape[axis]:
            return f"input sizes along axis {axis} do not add up to the output's {out.shape[axis]}"
        others = [i for i in range(len(out.shape)) if i != axis % len(out.shape)]
        if any(t.shape[i] != out.shape[i] for t in ins for i in others):
            return "inputs differ from the output outside the concatenation axis"
        q = out.quant
        for t in ins:
            if t.quant is not None and q is not None and (t.quant.s, t.quant.zp) != (q.s, q.zp):
                return f"input {t.name!r} is on a different grid than the output"
        return None

    def reference(self, op, args, out_t):
        return np.concatenate(list(args), axis=op.a.axis)

    def kernel_params(self, graph, op):
        return {"n_inputs": len(op.inputs),
                "copies": loops.concat([graph.tensors[n].shape for n in op.inputs], op.a.axis)}
