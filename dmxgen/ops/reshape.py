"""reshape: a new shape over the same bytes (the memory plan aliases it where it can)."""
from __future__ import annotations

from dataclasses import dataclass

from ..graph.tensor import DTYPES
from . import register
from ._spec import OpSpec


@dataclass(frozen=True)
class ReshapeAttrs:
    pass  # the output tensor's shape is the new shape


@register
class Reshape(OpSpec):
    kind = "reshape"
    summary = "new shape, same bytes"
    Attrs = ReshapeAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")  # HLS: an alias, no layer
    dtypes = DTYPES
    mve_dtypes = DTYPES  # a copy (copy_mve.c.j2) of whatever width

    def check(self, op, ins, out):
        if ins[0].size != out.size:
            return f"input {list(ins[0].shape)} and output {list(out.shape)} hold different numbers of values"
        return None

    def reference(self, op, args, out_t):
        return args[0].reshape(out_t.shape)
