"""Shape and reduction ops: reshape, pad, reduce_max, mean."""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import _wrap32, multiply_by_quantized_multiplier


def lut(op, args, out_t):
    """The input's int8 code + 128 indexes the 256-entry table."""
    return np.asarray(op.attrs["table"], dtype=np.int8)[args[0].astype(np.int64) + 128]


def concat(op, args, out_t):
    return np.concatenate(list(args), axis=op.attrs["axis"])


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
        return _float_mean(x, at["axes"]).reshape(out_t.shape)
    # TFLite's reference_ops::QuantizedMeanOrSum (LiteRT and TFLite Micro alike):
    # an int32 sum minus zp_in * count, then one double-rounding requantization
    # whose multiplier already holds the 1/count (frontend: mean_multiplier/mean_shift).
    total = x.astype(np.int64).sum(axis=at["axes"]) + at["input_offset"] * at["count"]
    q = multiply_by_quantized_multiplier(_wrap32(total), at["mean_multiplier"], at["mean_shift"])
    return np.clip(q + at["output_offset"], -128, 127).reshape(out_t.shape)


def _float_mean(x: np.ndarray, axes) -> np.ndarray:
    """float32 sum in the input's row-major order (as reference_ops::Mean), then / float32(count)."""
    axes = tuple(axes)
    kept = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x.astype(np.float32), kept + list(axes)).reshape(-1, int(np.prod([x.shape[a] for a in axes])))
    total = np.zeros(rows.shape[0], np.float32)
    for j in range(rows.shape[1]):  # sequential, not numpy's pairwise summation
        total = (total + rows[:, j]).astype(np.float32)
    return (total / np.float32(rows.shape[1])).astype(np.float32)
