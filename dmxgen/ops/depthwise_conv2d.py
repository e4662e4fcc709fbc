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


# -- the MVE int8 kernel's channel planes (templates/c/kernels/depthwise_conv2d_mve.c.j2) -------------------
PLANE_GROUPS = 8  # struct dmx_dw_taps: windows of more tap groups run the channels-across-lanes kernel
PLANE_MIN_OUTPUTS = 16  # a plane costs a copy and a weight gather per channel: smaller outputs keep the lanes kernel


def tap_groups(k_h: int, k_w: int, dil_h: int, dil_w: int, plane_w: int) -> int:
    """How many byte gathers cover one window: taps in row-major order, up to 16 to a gather and each
    within 255 bytes (VLDRB's 8-bit offsets) of its group's first tap. The C kernel groups alike."""
    groups, first, base = 0, 0, 0
    for k in range(k_h * k_w):
        off = (k // k_w) * dil_h * plane_w + (k % k_w) * dil_w
        if groups == 0 or k - first == 16 or off - base > 255:
            groups, first, base = groups + 1, k, off
    return groups


def plane_shape(in_shape, out_shape, k, stride, dilation, pad) -> tuple[int, int] | None:
    """(rows, columns) of one channel as a plane padded with the input zero point, from which the MVE
    int8 kernel gathers each window with one VLDRB per group of 16 taps and sums it with one VMLADAVA;
    None where that kernel is not used: fewer than PLANE_MIN_OUTPUTS outputs per channel, more than
    PLANE_GROUPS tap groups, or channels too many for 16-bit gather offsets (7 * out_c > 65535)."""
    _, in_h, in_w, in_c = in_shape
    _, out_h, out_w, out_c = out_shape
    (kh, kw), (sh, sw), (dh, dw), (pt, pl) = k, stride, dilation, pad[:2]
    rows = max((out_h - 1) * sh + (kh - 1) * dh + 1, pt + in_h)
    cols = max((out_w - 1) * sw + (kw - 1) * dw + 1, pl + in_w)
    if out_h * out_w < PLANE_MIN_OUTPUTS or 7 * out_c > 0xFFFF or tap_groups(kh, kw, dh, dw, cols) > PLANE_GROUPS:
        return None
    return rows, cols


def plane_bytes(rows: int, cols: int, stride: tuple[int, int]) -> int:
    """The plane and what a last, partial block of four outputs reads past it (three steps of a row or
    of a column), in 16-byte vectors; the C kernel fills the same bytes."""
    return -(-(rows * cols + 3 * max(stride[1], stride[0] * cols)) // 16) * 16
