"""The C library's expf, so float tables match what TFLite computes in C."""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_libm.expf.restype = ctypes.c_float
_libm.expf.argtypes = [ctypes.c_float]


def expf(x: float) -> np.float32:
    return np.float32(_libm.expf(ctypes.c_float(float(x))))
