"""avg_pool2d and max_pool2d: TFLite's int8 reference pooling."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def _windows(x: np.ndarray, attrs: dict, out_t, fill) -> np.ndarray:
    kh, kw = attrs["filter"]
    sh, sw = attrs["stride"]
    pt, pl, _, _ = attrs["pad"]
    n, oh, ow, c = out_t.shape
    extra_h = max(0, (oh - 1) * sh + kh - (x.shape[1] + pt))
    extra_w = max(0, (ow - 1) * sw + kw - (x.shape[2] + pl))
    xp = np.pad(x, ((0, 0), (pt, extra_h), (pl, extra_w), (0, 0)), constant_values=fill)
    s = xp.strides
    return as_strided(xp, shape=(n, oh, ow, kh, kw, c),
                      strides=(s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]), writeable=False)


def avg_pool2d(op, args, out_t):
    x = args[0].astype(np.int64)
    acc = _windows(x, op.attrs, out_t, 0).sum(axis=(3, 4))
    count = _windows(np.ones_like(x), op.attrs, out_t, 0).sum(axis=(3, 4))
    half = count // 2
    # C's truncating division of a rounded-half-away numerator.
    q = np.where(acc > 0, (acc + half) // count, -((-acc + half) // count))
    return np.clip(q, op.attrs["act_min"], op.attrs["act_max"])


def max_pool2d(op, args, out_t):
    x = args[0].astype(np.int16)
    m = _windows(x, op.attrs, out_t, -32768).max(axis=(3, 4))
    return np.clip(m, op.attrs["act_min"], op.attrs["act_max"])
