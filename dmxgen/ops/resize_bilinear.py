"""resize_bilinear: TFLite's reference_ops::ResizeBilinearInteger (the int8 path, 10-bit fixed point).

Per output row y: scaled = y * scale_10 (+ scale_10 / 2 - 512 with half_pixel_centers), the two
input rows y0 = max(scaled / 1024, 0), y1 = min((scaled + 1023) / 1024, H - 1) and the fraction
scaled - 1024 * y0; columns likewise. Each output is the four codes weighted by the fractions
(a 20-bit fixed-point sum) rounded half away from zero by 2^20. The tables are integers, computed
once; `interpolate` is the one arithmetic, run on numpy by the reference and on torch by the
fake-quantized layer (compress/decoders.py), and written out again in the C and HLS kernels.
"""
from __future__ import annotations

import numpy as np

from . import register
from ._spec import OpSpec
from .resize_nearest import ResizeAttrs, check_resize

ONE = 1 << 10  # the 10-bit fixed point of the scales and fractions


def _cdiv(a: np.ndarray, b: int) -> np.ndarray:
    """C's integer division (truncating toward zero)."""
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def scale_10(in_size: int, out_size: int, align_corners: int) -> int:
    """TFLite's height_scale_10 / width_scale_10."""
    if align_corners and out_size > 1:
        return (ONE * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    return (ONE * in_size + out_size // 2) // out_size


def axis_table(in_size: int, out_size: int, align_corners: int, half_pixel_centers: int) -> np.ndarray:
    """[out_size, 3] int64: (lower index, upper index, fraction of the upper in 1/1024) per output
    index, ComputeInterpolationValuesInteger."""
    s = scale_10(in_size, out_size, align_corners)
    v = np.arange(out_size, dtype=np.int64) * s
    if half_pixel_centers:
        v = v + s // 2 - (1 << 9)
    lo = np.maximum(_cdiv(v, ONE), 0)
    hi = np.minimum(_cdiv(v + ONE - 1, ONE), in_size - 1)
    return np.stack([lo, hi, v - ONE * lo], axis=1)


def bilinear_tables(in_shape, out_shape, a) -> tuple[np.ndarray, np.ndarray]:
    return (axis_table(in_shape[1], out_shape[1], a.align_corners, a.half_pixel_centers),
            axis_table(in_shape[2], out_shape[2], a.align_corners, a.half_pixel_centers))


def interpolate(x, ys, xs, where):
    """x [N, H, W, C] int64 codes (numpy, or torch with int64 tables) -> [N, OH, OW, C] codes.

    `where` is np.where or torch.where. |sum| < 2^31: the weights' magnitudes add up to at most
    2048 per axis (a fraction in [-512, 1024) only with lower == upper), times 128.
    """
    y0, y1, fy = ys[:, 0], ys[:, 1], ys[:, 2][None, :, None, None]
    x0, x1, fx = xs[:, 0], xs[:, 1], xs[:, 2][None, None, :, None]
    top, bottom = x[:, y0], x[:, y1]
    s = (top[:, :, x0] * (ONE - fy) * (ONE - fx) + bottom[:, :, x0] * fy * (ONE - fx)
         + top[:, :, x1] * (ONE - fy) * fx + bottom[:, :, x1] * fy * fx)
    q = (abs(s) + (1 << 19)) >> 20  # (s + round) / 2^20 with round = +-2^19, truncating
    return where(s < 0, -q, q)


@register
class ResizeBilinear(OpSpec):
    kind = "resize_bilinear"
    summary = "bilinear resize of NHWC int8 codes (TFLite's 10-bit fixed-point interpolation)"
    Attrs = ResizeAttrs
    targets = ("c", "hls", "tflite", "torch")

    def check(self, op, ins, out):
        problem = check_resize(op, ins, out)
        if problem:
            return problem
        if op.a.align_corners and op.a.half_pixel_centers:
            return "align_corners and half_pixel_centers cannot both be set (TFLite refuses it)"
        ys, xs = bilinear_tables(ins[0].shape, out.shape, op.a)
        if ys[:, 0].max() >= ins[0].shape[1] or xs[:, 0].max() >= ins[0].shape[2]:
            # TFLite does not bound the lower index: it would read past the input
            return (f"resizing {list(ins[0].shape[1:3])} to {list(out.shape[1:3])}: TFLite's 10-bit scale "
                    "rounds up to an input row or column past the edge")
        return None

    def reference(self, op, args, out_t):
        ys, xs = bilinear_tables(args[0].shape, out_t.shape, op.a)
        return interpolate(args[0].astype(np.int64), ys, xs, np.where).astype(out_t.dtype)

    def kernel_params(self, graph, op):
        x, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        n, ih, iw, c = x.shape
        ys, xs = bilinear_tables(x.shape, out.shape, op.a)
        rows = ys * np.array([iw * c, iw * c, 1])  # element offsets of the two rows, and the fraction
        cols = xs * np.array([c, c, 1])
        return {"batches": n, "out_h": out.shape[1], "out_w": out.shape[2], "channels": c, "in_image": ih * iw * c,
                "rows": rows.reshape(-1).astype(np.int32), "cols": cols.reshape(-1).astype(np.int32)}
