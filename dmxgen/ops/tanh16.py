"""tanh16: TFLite's int16 TANH (reference_integer_ops::Tanh, LiteRT and TFLite Micro alike).

tanh(x) = 2 sigmoid(2x) - 1: the code rescaled by the Prepare's multiplier, TFLite's 256-entry sigmoid
table interpolated on 8 fractional bits, written on the 1/32768, zp 0 grid (ops/_lstm_int.py).
int8 TANH is a `lut` (frontends/tflite_ops/tables.py).
"""
from __future__ import annotations

import numpy as np

from . import register
from ._act16 import Act16
from ._lstm_int import tflm_tanh16


@register
class Tanh16(Act16):
    kind = "tanh16"
    summary = "int16 tanh (TFLite's interpolated sigmoid table, output 1/32768)"

    def reference(self, op, args, out_t):
        a = op.a
        return tflm_tanh16(args[0], a.input_multiplier, a.input_left_shift).astype(np.int16)
