"""max_pool2d: TFLite's int8 reference max pooling (NHWC; padding never wins)."""
from __future__ import annotations

import numpy as np

from . import register
from ._families import Pool2dSpec
from ._requant import clamp
from ._windows import pool_windows


@register
class MaxPool2d(Pool2dSpec):
    kind = "max_pool2d"
    summary = "2-D max pooling, NHWC"
    targets = ("c", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # a maximum of codes

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64)
        m = pool_windows(x, a, out_t, np.iinfo(np.int64).min).max(axis=(3, 4))
        return clamp(m, a.act_min, a.act_max, out_t.dtype)
