"""avg_pool2d: TFLite's int8 and int16 (16x8) reference average pooling (NHWC; the count excludes padding).

`divisor="window"` is PyTorch's count_include_pad=True: divide by the window clipped to the
padded image instead of by its taps inside the image. PyTorch's ceil_mode arrives as extra
bottom/right padding (`overhang`), which even that divisor does not count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import register
from ._families import Pool2dAttrs, Pool2dSpec
from ._requant import clamp
from ._spec import Pair
from ._windows import pool_windows


@dataclass(frozen=True)
class AvgPool2dAttrs(Pool2dAttrs):
    divisor: Literal["valid", "window"] = "valid"  # taps inside the image, or the window inside the padding
    overhang: Pair = (0, 0)  # rows, columns of the bottom / right pad that the "window" divisor leaves out


def window_ends(a, in_h: int, in_w: int) -> tuple[int, int]:
    """The row and column where the "window" divisor's padded image ends (the kernels' win_h, win_w)."""
    return in_h + a.pad[2] - a.overhang[0], in_w + a.pad[3] - a.overhang[1]


def window_counts(a, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per output row and column, the window's extent inside [-pad_before, size + pad_after - overhang)."""
    out = []
    for end, k, s, before, n in zip(window_ends(a, *in_hw), a.filter, a.stride, a.pad[:2], out_hw):
        start = np.arange(n) * s - before
        out.append(np.minimum(start + k, end) - start)
    return out[0], out[1]


@register
class AvgPool2d(Pool2dSpec):
    kind = "avg_pool2d"
    summary = "2-D average pooling, NHWC"
    Attrs = AvgPool2dAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: TFLite's 16x8 average pool (C: scalar, also in the MVE build; HLS)

    def check(self, op, ins, out):
        a = op.a
        if any(o < 0 or o > p for o, p in zip(a.overhang, a.pad[2:])):
            return f"overhang {list(a.overhang)} is not within the bottom / right padding {list(a.pad[2:])}"
        if out.dtype == "int16" and a.filter[0] * a.filter[1] > 1 << 16:  # TFLite sums int16 codes in int32
            return f"int16 average of a {a.filter[0]}x{a.filter[1]} window: its int32 sum can overflow (at most 65536 taps)"
        return super().check(op, ins, out)

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64)
        acc = pool_windows(x, a, out_t, 0).sum(axis=(3, 4))
        if a.divisor == "window":
            rows, cols = window_counts(a, x.shape[1:3], out_t.shape[1:3])
            count = np.broadcast_to((rows[:, None] * cols[None, :])[None, :, :, None], acc.shape)
        else:
            count = pool_windows(np.ones_like(x), a, out_t, 0).sum(axis=(3, 4))
        half = count // 2
        # C's truncating division of a rounded-half-away numerator.
        q = np.where(acc > 0, (acc + half) // count, -((-acc + half) // count))
        return clamp(q, a.act_min, a.act_max, out_t.dtype)
