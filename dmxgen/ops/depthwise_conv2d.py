"""depthwise_conv2d: TFLite's reference_integer_ops::DepthwiseConvPerChannel (NHWC, 1HWC weights)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._families import ConvSpec
from ._requant import requantize
from ._windows import conv_patches
from .conv2d import Conv2dAttrs


@dataclass(frozen=True)
class DepthwiseConv2dAttrs(Conv2dAttrs):
    depth_multiplier: int = 1  # output channels per input channel


@register
class DepthwiseConv2d(ConvSpec):
    kind = "depthwise_conv2d"
    summary = "depthwise 2-D convolution, NHWC input, 1HWC weights"
    Attrs = DepthwiseConv2dAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    weight_formats = ("dense",)  # the kernels walk taps x channels
    depthwise = True
    dtypes = ("int8", "int16")
    mve_dtypes = dtypes

    def reference(self, op, args, out_t):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        a = op.a
        _, kh, kw, cout = w.shape
        n, oh, ow, _ = out_t.shape
        acc = depthwise_accumulate(conv_patches(x, a, kh, kw, (oh, ow)), w[0], a.depth_multiplier,
                                   _tap_bound(x.dtype, a.input_offset, w))
        if bias is not None:
            acc += bias.astype(np.int64)
        return requantize(acc, a, out_t.dtype, a.rounding)  # as the C and HLS kernels read it


def _tap_bound(x_dtype, input_offset: int, w: np.ndarray) -> int:
    """A bound on |every partial sum| of one output: taps x max|x + offset| x max|w|."""
    info = np.iinfo(x_dtype)
    x_max = max(abs(int(info.min) + input_offset), abs(int(info.max) + input_offset))
    return w.shape[1] * w.shape[2] * x_max * int(np.abs(w.astype(np.int64)).max(initial=0))


def depthwise_accumulate(p: np.ndarray, w: np.ndarray, mult: int, bound: int) -> np.ndarray:
    """int64 [N, OH, OW, C*mult] sums over taps of patches p [N, OH, OW, KH, KW, C] times w [KH, KW, C*mult].

    One multiply-add per tap on strided views (no int64 copy of the KH*KW-times larger patches, which
    einsum needed), in int32 when `bound` proves no partial sum reaches 2**31, so it is exact.
    """
    n, oh, ow, kh, kw, c = p.shape
    dt = np.int32 if bound < 2**31 else np.int64
    wt = w.astype(dt).reshape(kh, kw, c, mult)
    if mult == 1:
        wt = wt[..., 0]
    else:
        p = p[..., None]  # output channel c*mult + j reads input channel c
    acc = p[:, :, :, 0, 0] * wt[0, 0]
    acc = acc.astype(dt, copy=False)
    tmp = np.empty_like(acc)
    for ky in range(kh):
        for kx in range(kw):
            if ky or kx:
                np.multiply(p[:, :, :, ky, kx], wt[ky, kx], out=tmp)
                acc += tmp
    return acc.reshape(n, oh, ow, c * mult).astype(np.int64)
