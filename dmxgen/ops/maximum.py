"""maximum: TFLite's MAXIMUM on int8 codes with broadcasting (inputs and output on one grid)."""
from __future__ import annotations

import numpy as np

from . import register
from ._select import SelectSpec


@register
class Maximum(SelectSpec):
    kind = "maximum"
    summary = "elementwise maximum with broadcasting (one grid)"
    pick = staticmethod(np.maximum)
