"""resize_nearest: TFLite's reference_ops::ResizeNearestNeighbor (NHWC, int8 or int16 codes copied).

Each output row y reads input row GetNearestNeighbor(y), each column likewise: TFLite computes the
index in float32 ((y + offset) * scale, floored or, with align_corners, rounded), which is done
once here, into per-row and per-column index tables. The kernels are a gathered copy through
those two const int tables; the run-time path has no float.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._spec import OpSpec


@dataclass(frozen=True)
class ResizeAttrs:
    align_corners: int  # 0 or 1
    half_pixel_centers: int  # 0 or 1


def check_resize(op, ins, out) -> str | None:
    """Both resizes: 4-D NHWC in and out, batch and channels kept, flags 0 or 1."""
    x = ins[0]
    if len(x.shape) != 4 or len(out.shape) != 4:
        return f"expects a 4-D NHWC input and output, got {list(x.shape)} -> {list(out.shape)}"
    if (out.shape[0], out.shape[3]) != (x.shape[0], x.shape[3]):
        return f"output shape {list(out.shape)} should keep the input's batch and channels {list(x.shape)}"
    flags = (op.a.align_corners, op.a.half_pixel_centers)
    if any(f not in (0, 1) for f in flags):
        return f"align_corners and half_pixel_centers must be 0 or 1, got {list(flags)}"
    return None


def nearest_indices(in_size: int, out_size: int, align_corners: int, half_pixel_centers: int) -> np.ndarray:
    """GetNearestNeighbor for every output index, with TFLite's float32 arithmetic."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    v = (np.arange(out_size).astype(f32) + offset) * scale  # float32 throughout, as the C++
    if align_corners:
        whole = np.trunc(v)  # TfLiteRound (std::round) of v >= 0; v - whole is exact in float32
        idx = whole + (v - whole >= f32(0.5))
    else:
        idx = np.floor(v)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        idx = np.maximum(idx, 0)
    return idx


def nearest_tables(in_shape, out_shape, a) -> tuple[np.ndarray, np.ndarray]:
    """(input row per output row, input column per output column)."""
    return (nearest_indices(in_shape[1], out_shape[1], a.align_corners, a.half_pixel_centers),
            nearest_indices(in_shape[2], out_shape[2], a.align_corners, a.half_pixel_centers))


def gather_nearest(x, rows, cols):
    """x [N, H, W, C] (numpy, or torch with index tensors) at the tables' rows and columns."""
    return x[:, rows][:, :, cols]


@register
class ResizeNearest(OpSpec):
    kind = "resize_nearest"
    summary = "nearest-neighbour resize of NHWC (a gathered copy through index tables)"
    Attrs = ResizeAttrs
    targets = ("c", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # codes are copied, whatever their width

    def check(self, op, ins, out):
        return check_resize(op, ins, out)

    def reference(self, op, args, out_t):
        rows, cols = nearest_tables(args[0].shape, out_t.shape, op.a)
        return gather_nearest(args[0], rows, cols)

    def kernel_params(self, graph, op):
        x, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        n, ih, iw, c = x.shape
        rows, cols = nearest_tables(x.shape, out.shape, op.a)
        return {"batches": n, "out_h": out.shape[1], "out_w": out.shape[2], "channels": c, "in_image": ih * iw * c,
                "rows": (rows * iw * c).astype(np.int32), "cols": (cols * c).astype(np.int32)}
