"""quantize: float32 -> int8 or int16, TFLite's AffineQuantize (round half away from zero)."""
from __future__ import annotations

from dataclasses import dataclass

from ..graph.fixedpoint import quantize_float
from . import register
from ._checks import same_shape
from ._spec import OpSpec


@dataclass(frozen=True)
class QuantizeAttrs:
    scale: float  # the output's
    zero_point: int


@register
class Quantize(OpSpec):
    kind = "quantize"
    summary = "float32 -> int8 or int16"
    dtypes = ("int8", "int16")  # the output codes'
    Attrs = QuantizeAttrs
    targets = ("c", "tflite")  # HLS: only on a graph input, where the host quantizes (hls_plan.py)

    def check(self, op, ins, out):
        return same_shape(ins, out)

    def reference(self, op, args, out_t):
        a = op.a
        # AffineQuantize: float32 input divided by the float32 scale, rounded half away.
        return quantize_float(args[0], a.scale, a.zero_point, out_t.dtype)
