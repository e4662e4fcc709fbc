"""minimum: TFLite's MINIMUM on int8 codes with broadcasting (inputs and output on one grid)."""
from __future__ import annotations

import numpy as np

from . import register
from ._select import SelectSpec


@register
class Minimum(SelectSpec):
    kind = "minimum"
    summary = "elementwise minimum with broadcasting (one grid)"
    pick = staticmethod(np.minimum)
