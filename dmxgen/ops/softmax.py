"""softmax: int8 softmax over the last axis, as TFLite runs it for int8.

TFLite's Prepare builds a 256-entry float32 exp table, Eval sums in float32;
the output is int8 on the grid 1/256, -128. TFLite Micro's integer-only
version is its own kind, softmax_gemmlowp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._checks import same_shape
from ._spec import Floats, OpSpec


@dataclass(frozen=True)
class SoftmaxAttrs:
    beta: float
    input_scale: float
    table: Floats  # expf(-input_scale * beta * (255 - i))
    output_scale: float


@register
class Softmax(OpSpec):
    kind = "softmax"
    summary = "softmax over the last axis (float exp table, as TFLite)"
    Attrs = SoftmaxAttrs
    targets = ("c", "hls", "tflite")

    def check(self, op, ins, out):
        return same_shape(ins, out)

    def reference(self, op, args, out_t):
        return _float_table(args[0], op.a)


def _float_table(x: np.ndarray, a: SoftmaxAttrs) -> np.ndarray:
    table = np.asarray(a.table, dtype=np.float32)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int32)
    mx = rows.max(axis=1, keepdims=True)
    vals = table[255 - (mx - rows)]
    s = np.zeros(rows.shape[0], np.float32)
    for j in range(rows.shape[1]):  # float32 sum in C's order
        s = (s + vals[:, j]).astype(np.float32)
    inv = (np.float32(1.0) / (s * np.float32(a.output_scale))).astype(np.float32)
    prob = (vals * inv[:, None]).astype(np.float32)
    q = np.rint(prob).astype(np.int64) - 128
    return np.clip(q, -128, 127).reshape(x.shape)
