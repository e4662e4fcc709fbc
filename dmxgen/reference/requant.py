"""Shared tail of the int8 kernels: requantize an int32 accumulator and clamp."""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import ROUNDINGS


def requantize(acc: np.ndarray, attrs: dict, channel_axis: int = -1) -> np.ndarray:
    """acc (int64, channels last) -> int8 with per-channel multiplier/shift, offset and clamp."""
    mult = np.asarray(attrs["multiplier"], dtype=np.int64)
    shift = np.asarray(attrs["shift"], dtype=np.int64)
    scale = ROUNDINGS[attrs.get("rounding", "double")]
    out = scale(acc, mult, shift) + attrs["output_offset"]
    return np.clip(out, attrs["act_min"], attrs["act_max"]).astype(np.int8)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer matrix product through float64 BLAS: exact while |sums| < 2**53."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
