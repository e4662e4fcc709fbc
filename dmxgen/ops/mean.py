"""mean: the int8 / int16 mean over axes, as TFLite's reference_ops::QuantizedMeanOrSum (float32: mean_float)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import _wrap32, multiply_by_quantized_multiplier
from . import register
from ._checks import reduction
from ._requant import saturate
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class MeanAttrs:
    axes: Ints  # sorted, non-negative
    input_offset: int  # -zero point of the input
    output_offset: int
    count: int  # values averaged per output
    multiplier: int  # s_in / s_out (as Prepare derives it)
    shift: int
    mean_multiplier: int  # the multiplier with 1/count folded in (what Eval uses)
    mean_shift: int


@register
class Mean(OpSpec):
    kind = "mean"
    summary = "int8 mean over axes"
    Attrs = MeanAttrs
    targets = ("c", "hls", "tflite")
    dtypes = ("int8", "int16")  # int16: TFLite's 16x8 MEAN, the same int32 sums

    def check(self, op, ins, out):
        if out.dtype == "int16" and op.a.count > 1 << 16:  # TFLite sums int16 codes in int32
            return f"int16 mean of {op.a.count} values: its int32 sum can overflow (at most 65536)"
        return reduction(ins, out, op.a.axes)

    def reference(self, op, args, out_t):
        a = op.a
        # LiteRT and TFLite Micro alike: an int32 sum minus zp_in * count, then one
        # double-rounding requantization whose multiplier already holds the 1/count.
        total = args[0].astype(np.int64).sum(axis=tuple(a.axes)) + a.input_offset * a.count
        q = multiply_by_quantized_multiplier(_wrap32(total), a.mean_multiplier, a.mean_shift)
        return saturate(q + a.output_offset, out_t.dtype).reshape(out_t.shape)
