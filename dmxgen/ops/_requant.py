"""Shared tail of the integer kernels: requantize an accumulator, clamp to the output dtype.

The clamp is by the output tensor's dtype (np.iinfo), so an int16 output
saturates at int16's bounds instead of wrapping through an int8 cast.
"""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import ROUNDINGS


def dtype_range(dtype: str) -> tuple[int, int]:
    """(min, max) of an integer dtype."""
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def clamp(x: np.ndarray, lo: int, hi: int, dtype: str) -> np.ndarray:
    """x clamped to [lo, hi] and to the range of `dtype`, cast to it."""
    dmin, dmax = dtype_range(dtype)
    return np.clip(x, max(lo, dmin), min(hi, dmax)).astype(dtype)


def saturate(x: np.ndarray, dtype: str) -> np.ndarray:
    """x clamped to the range of `dtype`, cast to it."""
    return clamp(x, *dtype_range(dtype), dtype)


def requantize(acc: np.ndarray, a, dtype: str, rounding: str = "double") -> np.ndarray:
    """acc (int64, channels last) -> `dtype` with per-channel multiplier/shift, offset and clamp.

    `a` is a conv/fc op's typed attrs (multiplier, shift, output_offset, act_min, act_max).
    """
    mult = np.asarray(a.multiplier, dtype=np.int64)
    shift = np.asarray(a.shift, dtype=np.int64)
    out = ROUNDINGS[rounding](acc, mult, shift) + a.output_offset
    return clamp(out, a.act_min, a.act_max, dtype)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer matrix product through float64 BLAS: exact while |sums| < 2**53."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
