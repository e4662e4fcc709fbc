"""quantize (float -> int8, int8 -> int8) and dequantize, as TFLite's reference."""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(op, args, out_t):
    at = op.attrs
    x = args[0]
    if at["mode"] == "float":
        # AffineQuantize: float32 input divided by the float32 scale, rounded half away.
        q = round_half_away((x.astype(np.float32) / np.float32(at["scale"])).astype(np.float64))
        q = np.clip(q, -(2**31), 2**31 - 1).astype(np.int64) + at["zero_point"]
        return np.clip(q, -128, 127)
    acc = multiply_by_quantized_multiplier(x.astype(np.int64) + at["input_offset"], at["multiplier"], at["shift"])
    return np.clip(acc + at["output_offset"], -128, 127)


def dequantize(op, args, out_t):
    at = op.attrs
    return (np.float64(at["scale"]) * (args[0].astype(np.int64) - at["zero_point"])).astype(np.float32)
