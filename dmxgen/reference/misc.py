"""Shape and reduction ops: reshape, pad, reduce_max, mean."""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier


def reshape(op, args, out_t):
    return args[0].reshape(out_t.shape)


def pad(op, args, out_t):
    return np.pad(args[0], op.attrs["paddings"], constant_values=op.attrs["value"])


def reduce_max(op, args, out_t):
    return args[0].max(axis=op.attrs["axes"]).reshape(out_t.shape)


def mean(op, args, out_t):
    at = op.attrs
    x = args[0]
    if at["mode"] == "float":
        return (x.astype(np.float32).sum(axis=at["axes"], dtype=np.float32) / np.float32(at.get("count", 1) or 1)
                ).reshape(out_t.shape)
    total = x.astype(np.int64).sum(axis=at["axes"]) + at["input_offset"] * at["count"]
    # divide by the count with rounding half away from zero, then requantize
    cnt = at["count"]
    avg = np.where(total >= 0, (total + cnt // 2) // cnt, -((-total + cnt // 2) // cnt))
    q = multiply_by_quantized_multiplier(avg, at["multiplier"], at["shift"]) + at["output_offset"]
    return np.clip(q, -128, 127).reshape(out_t.shape)
