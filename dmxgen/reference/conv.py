"""conv2d and depthwise_conv2d: TFLite's reference_integer_ops per-channel kernels."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .requant import exact_matmul, requantize


def patches(x: np.ndarray, attrs: dict, kh: int, kw: int, out_hw: tuple[int, int]) -> np.ndarray:
    """[N, OH, OW, KH, KW, C] windows of the offset input, zero outside the image.

    Padding with zero after adding the input offset is what TFLite's reference
    does by skipping out-of-image taps.
    """
    pt, pl, pb, pr = attrs["pad"]
    xo = x.astype(np.int32) + attrs["input_offset"]
    sh, sw = attrs["stride"]
    dh, dw = attrs["dilation"]
    oh, ow = out_hw
    # Pad enough for every window, including the far edge that padding "after" may not cover.
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    extra_h = max(0, need_h - (x.shape[1] + pt))
    extra_w = max(0, need_w - (x.shape[2] + pl))
    xp = np.pad(xo, ((0, 0), (pt, extra_h), (pl, extra_w), (0, 0)))
    n, _, _, c = xp.shape
    s = xp.strides
    return as_strided(xp, shape=(n, oh, ow, kh, kw, c),
                      strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)


def conv2d(op, args, out_t):
    x, w, bias = args
    cout, kh, kw, cin = w.shape
    n, oh, ow, _ = out_t.shape
    p = patches(x, op.attrs, kh, kw, (oh, ow)).reshape(n * oh * ow, kh * kw * cin)
    acc = exact_matmul(p, w.reshape(cout, -1).T)
    if bias is not None:
        acc += bias.astype(np.int64)
    return requantize(acc, op.attrs).reshape(out_t.shape)


def depthwise_conv2d(op, args, out_t):
    x, w, bias = args
    _, kh, kw, cout = w.shape
    n, oh, ow, _ = out_t.shape
    p = patches(x, op.attrs, kh, kw, (oh, ow)).astype(np.int64)
    mult = op.attrs.get("depth_multiplier", 1)
    if mult > 1:
        p = np.repeat(p, mult, axis=-1)
    acc = np.einsum("nyxhwc,hwc->nyxc", p, w[0].astype(np.int64))
    if bias is not None:
        acc += bias.astype(np.int64)
    return requantize(acc, op.attrs)
