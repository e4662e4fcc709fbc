"""avg_pool2d: TFLite's int8 reference average pooling (NHWC; the count excludes padding)."""
from __future__ import annotations

import numpy as np

from . import register
from ._families import Pool2dSpec
from ._requant import clamp
from ._windows import pool_windows


@register
class AvgPool2d(Pool2dSpec):
    kind = "avg_pool2d"
    summary = "2-D average pooling, NHWC"
    targets = ("c", "c_mve", "hls", "tflite", "torch")

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64)
        acc = pool_windows(x, a, out_t, 0).sum(axis=(3, 4))
        count = pool_windows(np.ones_like(x), a, out_t, 0).sum(axis=(3, 4))
        half = count // 2
        # C's truncating division of a rounded-half-away numerator.
        q = np.where(acc > 0, (acc + half) // count, -((-acc + half) // count))
        return clamp(q, a.act_min, a.act_max, out_t.dtype)
