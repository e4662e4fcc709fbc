"""arg_min: TFLite's ARG_MIN of int8 codes along one axis, the first index of the smallest (ops/arg_max.py)."""
from __future__ import annotations

import numpy as np

from . import register
from .arg_max import ArgSpec


@register
class ArgMin(ArgSpec):
    kind = "arg_min"
    summary = "index of the smallest int8 along an axis (int32 / int64 indices)"
    pick = staticmethod(np.argmin)
