"""logistic16: TFLite's int16 LOGISTIC (reference_integer_ops::Logistic, LiteRT and TFLite Micro alike).

The code rescaled by the Prepare's multiplier onto 1/(3 * 4096) units, then TFLite's 256-entry sigmoid
table interpolated on 9 fractional bits, written on the 1/32768, zp 0 grid (ops/_lstm_int.py).
int8 LOGISTIC is a `lut` (frontends/tflite_ops/tables.py).
"""
from __future__ import annotations

import numpy as np

from . import register
from ._act16 import Act16
from ._lstm_int import tflm_logistic16


@register
class Logistic16(Act16):
    kind = "logistic16"
    summary = "int16 sigmoid (TFLite's interpolated table, output 1/32768)"

    def reference(self, op, args, out_t):
        a = op.a
        return tflm_logistic16(args[0], a.input_multiplier, a.input_left_shift).astype(np.int16)
