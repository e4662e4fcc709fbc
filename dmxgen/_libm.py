"""The C library's expf, expm1f and tanhf, so float tables match what TFLite computes in C."""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
for _name in ("expf", "expm1f", "tanhf"):
    getattr(_libm, _name).restype = ctypes.c_float
    getattr(_libm, _name).argtypes = [ctypes.c_float]


def expf(x: float) -> np.float32:
    return np.float32(_libm.expf(ctypes.c_float(float(x))))


def expm1f(x: float) -> np.float32:
    return np.float32(_libm.expm1f(ctypes.c_float(float(x))))


def tanhf(x: float) -> np.float32:
    return np.float32(_libm.tanhf(ctypes.c_float(float(x))))
