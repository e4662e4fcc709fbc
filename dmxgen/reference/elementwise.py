"""add and mul with broadcasting: TFLite's int8 reference kernels."""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import _wrap32, multiply_by_quantized_multiplier as mbqm


def add(op, args, out_t):
    a, b = args
    at = op.attrs
    x1 = (a.astype(np.int64) + at["input1_offset"]) * (1 << at["left_shift"])
    x2 = (b.astype(np.int64) + at["input2_offset"]) * (1 << at["left_shift"])
    s1 = mbqm(x1, at["input1_multiplier"], at["input1_shift"])
    s2 = mbqm(x2, at["input2_multiplier"], at["input2_shift"])
    raw = mbqm(_wrap32(s1 + s2), at["output_multiplier"], at["output_shift"]) + at["output_offset"]
    return np.clip(np.broadcast_to(raw, out_t.shape), at["act_min"], at["act_max"])


def mul(op, args, out_t):
    a, b = args
    at = op.attrs
    prod = (a.astype(np.int64) + at["input1_offset"]) * (b.astype(np.int64) + at["input2_offset"])
    raw = mbqm(prod, at["output_multiplier"], at["output_shift"]) + at["output_offset"]
    return np.clip(np.broadcast_to(raw, out_t.shape), at["act_min"], at["act_max"])
