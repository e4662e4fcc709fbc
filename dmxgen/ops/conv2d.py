"""conv2d: TFLite's reference_integer_ops::ConvPerChannel (NHWC input, OHWI weights, int32 bias; 16x8: int16
activations, int64 bias, frontends/tflite_16x8.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import register
from ._families import ConvSpec
from ._requant import exact_matmul, requantize
from ._spec import Pair, PerChannel, Quad
from ._windows import conv_patches


@dataclass(frozen=True)
class Conv2dAttrs:
    stride: Pair
    dilation: Pair
    pad: Quad  # top, left, bottom, right
    input_offset: int  # -zero point of the input
    output_offset: int  # zero point of the output
    multiplier: PerChannel  # Q31 requantization multiplier per output channel
    shift: PerChannel
    activation: str  # the fused activation's name, for reports; act_min/act_max apply it
    act_min: int
    act_max: int
    weight_bits: int = 8  # 4: the weights fit int4 and are stored two per byte
    # single: power-of-two requantization (a rounded shift); reduced: 16x8's int64 MultiplyByQuantizedMultiplier
    rounding: Literal["single", "double", "reduced"] = "double"


@register
class Conv2d(ConvSpec):
    kind = "conv2d"
    summary = "2-D convolution, NHWC input, OHWI weights, int32 bias"
    Attrs = Conv2dAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: C (MVE matvec: s16/matvec_dense_mve.c.j2), HLS (int64 accumulators)
    mve_dtypes = dtypes
    weight_formats = ("dense", "csr", "dcsr", "dcsr_gather")  # dcsr_gather: C only (the HLS kernels read dCSR)

    def reference(self, op, args, out_t):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        a = op.a
        cout, kh, kw, cin = w.shape
        n, oh, ow, _ = out_t.shape
        p = conv_patches(x, a, kh, kw, (oh, ow)).reshape(n * oh * ow, kh * kw * cin)
        acc = exact_matmul(p, w.reshape(cout, -1).T)
        if bias is not None:
            acc += bias.astype(np.int64)
        return requantize(acc, a, out_t.dtype, a.rounding).reshape(out_t.shape)
