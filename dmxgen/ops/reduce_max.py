"""reduce_max: the maximum over axes (int8 with the input's grid, or float32)."""
from __future__ import annotations

from dataclasses import dataclass

from . import register
from ._checks import reduction
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class ReduceMaxAttrs:
    axes: Ints  # sorted, non-negative


@register
class ReduceMax(OpSpec):
    kind = "reduce_max"
    summary = "max over axes"
    Attrs = ReduceMaxAttrs
    targets = ("c", "hls", "tflite")
    dtypes = ("int8", "float32")

    def check(self, op, ins, out):
        return reduction(ins, out, op.a.axes)

    def reference(self, op, args, out_t):
        return args[0].max(axis=tuple(op.a.axes)).reshape(out_t.shape)
