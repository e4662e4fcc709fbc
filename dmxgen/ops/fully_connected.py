"""fully_connected: TFLite's reference_integer_ops::FullyConnected ([out, in] weights)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import register
from ._families import WeightedSpec
from ._requant import exact_matmul, requantize
from ._spec import PerChannel


@dataclass(frozen=True)
class FullyConnectedAttrs:
    input_offset: int
    output_offset: int
    batches: int  # rows of the input
    multiplier: PerChannel
    shift: PerChannel
    activation: str
    act_min: int
    act_max: int
    # LiteRT's reference FC rounds once with ties away from zero ("away"), TFLite Micro's twice
    # (docs/goldens.md); single: dmxgen's own power-of-two requantization; reduced: TFLite Micro's 16x8
    # int64 MultiplyByQuantizedMultiplier (frontends/tflite_16x8.py)
    rounding: Literal["single", "away", "double", "reduced"] = "double"
    weight_bits: int = 8


@register
class FullyConnected(WeightedSpec):
    kind = "fully_connected"
    summary = "matrix-vector product, [out, in] weights"
    Attrs = FullyConnectedAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")
    mve_dtypes = dtypes
    # dcsr_gather: dCSR's gather-offset variant for single vectors (C only; the HLS target refuses it)
    weight_formats = ("dense", "csr", "dcsr", "dcsr_gather")

    def check(self, op, ins, out):
        x, w = ins[0], ins[1]
        if len(w.shape) != 2:
            return f"weights must be 2-D, got {list(w.shape)}"
        if x.size % w.shape[1] != 0:
            return f"input {list(x.shape)} is not a whole number of rows of {w.shape[1]}"
        if out.size != (x.size // w.shape[1]) * w.shape[0]:
            return f"output shape {list(out.shape)} should hold {(x.size // w.shape[1]) * w.shape[0]} values"
        if not out.shape or out.shape[-1] != w.shape[0]:
            return f"output shape {list(out.shape)} should end in the {w.shape[0]} output channels"
        return None

    def reference(self, op, args, out_t):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        a = op.a
        cout, cin = w.shape
        xo = x.reshape(-1, cin).astype(np.int64) + a.input_offset
        acc = exact_matmul(xo, w.T)
        if bias is not None:
            acc += bias.astype(np.int64)
        return requantize(acc, a, out_t.dtype, a.rounding)
