"""Sliding windows shared by conv2d / depthwise_conv2d and avg_pool2d / max_pool2d: shapes and patches."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._checks import conv_out


def check_conv(op, ins: list, out, depthwise: bool) -> str | None:
    x, w = ins[0], ins[1]
    if len(x.shape) != 4 or len(w.shape) != 4 or len(out.shape) != 4:
        return f"expects 4-D input, weights and output, got {list(x.shape)}, {list(w.shape)}, {list(out.shape)}"
    a = op.a
    kh, kw = w.shape[1], w.shape[2]
    sh, sw = a.stride
    dh, dw = a.dilation
    pt, pl, pb, pr = a.pad
    want = (x.shape[0], conv_out(x.shape[1], kh, sh, dh, pt, pb), conv_out(x.shape[2], kw, sw, dw, pl, pr))
    cout = w.shape[3] if depthwise else w.shape[0]
    if not depthwise and w.shape[3] != x.shape[3]:
        return f"weights {list(w.shape)} expect {w.shape[3]} input channels, input {list(x.shape)} has {x.shape[3]}"
    if depthwise and cout != x.shape[3] * a.depth_multiplier:
        return f"weights {list(w.shape)} do not match input channels {x.shape[3]}"
    if want + (cout,) != out.shape:
        return f"output shape {list(out.shape)} should be {list(want + (cout,))}"
    if len(ins) > 2 and ins[2] is not None and ins[2].shape != (cout,):
        return f"bias shape {list(ins[2].shape)} should be [{cout}]"
    if np.size(a.multiplier) != cout:
        return f"{np.size(a.multiplier)} requantization multipliers for {cout} channels"
    return None


def conv_patches(x: np.ndarray, a, kh: int, kw: int, out_hw: tuple[int, int]) -> np.ndarray:
    """[N, OH, OW, KH, KW, C] windows of the offset input, zero outside the image.

    Padding with zero after adding the input offset is what TFLite's reference
    does by skipping out-of-image taps.
    """
    pt, pl, pb, pr = a.pad
    xo = x.astype(np.int32) + a.input_offset
    sh, sw = a.stride
    dh, dw = a.dilation
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


def check_pool(op, ins: list, out) -> str | None:
    x, a = ins[0], op.a
    kh, kw = a.filter
    sh, sw = a.stride
    pt, pl, pb, pr = a.pad
    want = (x.shape[0], conv_out(x.shape[1], kh, sh, 1, pt, pb), conv_out(x.shape[2], kw, sw, 1, pl, pr), x.shape[3])
    if want != out.shape:
        return f"output shape {list(out.shape)} should be {list(want)}"
    return None


def pool_windows(x: np.ndarray, a, out_t, fill) -> np.ndarray:
    """[N, OH, OW, KH, KW, C] windows of x, `fill` outside the image."""
    kh, kw = a.filter
    sh, sw = a.stride
    pt, pl, _, _ = a.pad
    n, oh, ow, c = out_t.shape
    extra_h = max(0, (oh - 1) * sh + kh - (x.shape[1] + pt))
    extra_w = max(0, (ow - 1) * sw + kw - (x.shape[2] + pl))
    xp = np.pad(x, ((0, 0), (pt, extra_h), (pl, extra_w), (0, 0)), constant_values=fill)
    s = xp.strides
    return as_strided(xp, shape=(n, oh, ow, kh, kw, c),
                      strides=(s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]), writeable=False)
