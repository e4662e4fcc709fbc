"""fully_connected: TFLite's reference_integer_ops::FullyConnected."""
from __future__ import annotations

import numpy as np

from .requant import exact_matmul, requantize


def fully_connected(op, args, out_t):
    x, w, bias = args
    cout, cin = w.shape
    xo = x.reshape(-1, cin).astype(np.int64) + op.attrs["input_offset"]
    acc = exact_matmul(xo, w.T)
    if bias is not None:
        acc += bias.astype(np.int64)
    return requantize(acc, op.attrs)
