"""pad: constant padding (PAD and PADV2; int8 pads with the output's zero point unless given)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._spec import OpSpec


@dataclass(frozen=True)
class PadAttrs:
    paddings: tuple[tuple[int, int], ...]  # (before, after) per axis
    value: int | float  # in the tensor's own codes


@register
class Pad(OpSpec):
    kind = "pad"
    summary = "constant padding"
    Attrs = PadAttrs
    targets = ("c", "c_mve", "hls", "tflite")
    dtypes = ("int8", "int16", "float32")  # HLS: int8 and int16
    mve_dtypes = dtypes  # the copy kernel (copy_mve.c.j2) moves 1, 2 or 4 bytes

    def check(self, op, ins, out):
        want = tuple(d + a + b for d, (a, b) in zip(ins[0].shape, op.a.paddings))
        if want != out.shape:
            return f"output shape {list(out.shape)} should be {list(want)}"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        return np.pad(args[0], a.paddings, constant_values=a.value)
