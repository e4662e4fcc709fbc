"""dequantize: int8 or int16 -> float32, scale * (q - zero_point) as TFLite's reference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._checks import same_shape
from ._spec import OpSpec


@dataclass(frozen=True)
class DequantizeAttrs:
    scale: float  # the input's
    zero_point: int


@register
class Dequantize(OpSpec):
    kind = "dequantize"
    summary = "int8 or int16 -> float32"
    dtypes = ("int8", "int16")  # the input codes'
    Attrs = DequantizeAttrs
    targets = ("c", "tflite")  # HLS: only on a graph output, where the host dequantizes (hls_plan.py)

    def activation_dtype(self, graph, op) -> str:
        return graph.tensors[op.inputs[0]].dtype  # the output is float32

    def check(self, op, ins, out):
        return same_shape(ins, out)

    def reference(self, op, args, out_t):
        a = op.a
        return (np.float64(a.scale) * (args[0].astype(np.int64) - a.zero_point)).astype(np.float32)
