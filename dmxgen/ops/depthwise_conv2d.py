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

    def reference(self, op, args, out_t):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        a = op.a
        _, kh, kw, cout = w.shape
        n, oh, ow, _ = out_t.shape
        p = conv_patches(x, a, kh, kw, (oh, ow)).astype(np.int64)
        if a.depth_multiplier > 1:
            p = np.repeat(p, a.depth_multiplier, axis=-1)
        acc = np.einsum("nyxhwc,hwc->nyxc", p, w[0].astype(np.int64))
        if bias is not None:
            acc += bias.astype(np.int64)
        return requantize(acc, a, out_t.dtype, a.rounding)  # as the C and HLS kernels read it
