"""int8 softmax over the last axis.

`float_table` is what TFLite runs for int8 (its Prepare builds a 256-entry
float exp table, then sums in float32); `gemmlowp` is TFLite Micro's
integer-only version.
"""
from __future__ import annotations

import numpy as np

from ..graph import fixedpoint as fp


def softmax(op, args, out_t):
    if op.attrs["algorithm"] == "gemmlowp":
        return fp.softmax_gemmlowp(args[0], op.attrs)
    return _float_table(args[0], op.attrs)


def _float_table(x: np.ndarray, at: dict) -> np.ndarray:
    table = np.asarray(at["table"], dtype=np.float32)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int32)
    mx = rows.max(axis=1, keepdims=True)
    vals = table[255 - (mx - rows)]
    s = np.zeros(rows.shape[0], np.float32)
    for j in range(rows.shape[1]):  # float32 sum in C's order
        s = (s + vals[:, j]).astype(np.float32)
    inv = (np.float32(1.0) / (s * np.float32(at["output_scale"]))).astype(np.float32)
    prob = (vals * inv[:, None]).astype(np.float32)
    q = np.rint(prob).astype(np.int64) - 128
    return np.clip(q, -128, 127).reshape(x.shape)
