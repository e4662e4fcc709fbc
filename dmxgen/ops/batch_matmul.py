"""batch_matmul: int8 x int8 -> int8 product of two activations, as TFLite's reference BATCH_MATMUL.

out[..., i, j] = requant(sum_k (lhs[..., i, k] + lhs_offset) * (rhs[..., k, j] + rhs_offset)), with
adj_x / adj_y reading an operand's last two dims swapped and the batch dims (all but the last two,
up to three of them) broadcast as TFLite's reference batch_matmul.h does: a dim of 1 repeats.
The accumulator is int32 in TFLite; `check` refuses depths where it could overflow, so the
int64 reference, the C and the HLS kernels agree without wrapping. Requantization is the
32-bit MultiplyByQuantizedMultiplier (double rounding) in LiteRT and TFLite Micro alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._requant import clamp
from ._spec import ACTIVATION, OpSpec

MIN_RANK, MAX_RANK = 2, 5  # TFLite's BATCH_MATMUL; three batch dims at most
BATCH_DIMS = MAX_RANK - 2
MAX_TERM = 255 * 255  # |(code + offset)| <= 255 on each side
MAX_DEPTH = (2**31 - 1) // MAX_TERM  # deepest sum that cannot overflow TFLite's int32 accumulator


@dataclass(frozen=True)
class BatchMatmulAttrs:
    adj_x: int  # 1: lhs is stored [..., K, M]
    adj_y: int  # 1: rhs is stored [..., N, K]
    lhs_offset: int  # -lhs zero point
    rhs_offset: int  # -rhs zero point
    output_offset: int
    output_multiplier: int  # s_lhs * s_rhs / s_out in double
    output_shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class Geometry:
    """The loops of one batch_matmul: output batch dims (padded to BATCH_DIMS), M, N, K, and the
    element strides of each operand (0 along a broadcast batch dim)."""

    batches: tuple[int, ...]
    lhs_batch_stride: tuple[int, ...]
    rhs_batch_stride: tuple[int, ...]
    rows: int
    cols: int
    depth: int
    lhs_row_stride: int
    lhs_depth_stride: int
    rhs_depth_stride: int
    rhs_col_stride: int

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.batches) + (self.rows, self.cols)


def geometry(lhs: tuple, rhs: tuple, adj_x: int, adj_y: int) -> Geometry | str:
    """The loops of lhs [..., M, K] x rhs [..., K, N] (adjoints swapped), or what is wrong."""
    for side, shape in (("lhs", lhs), ("rhs", rhs)):
        if not MIN_RANK <= len(shape) <= MAX_RANK:
            return f"{side} has rank {len(shape)}; BATCH_MATMUL takes ranks {MIN_RANK} to {MAX_RANK}"
    lx = (1,) * (MAX_RANK - len(lhs)) + tuple(lhs)
    rx = (1,) * (MAX_RANK - len(rhs)) + tuple(rhs)
    batches = []
    for a, b in zip(lx[:BATCH_DIMS], rx[:BATCH_DIMS]):
        if a != b and 1 not in (a, b):
            return f"batch dims of {list(lhs)} and {list(rhs)} do not broadcast"
        batches.append(a if a != 1 else b)
    rows, depth = (lx[-1], lx[-2]) if adj_x else (lx[-2], lx[-1])
    rdepth, cols = (rx[-1], rx[-2]) if adj_y else (rx[-2], rx[-1])
    if depth != rdepth:
        return (f"lhs {list(lhs)} (adj_x={adj_x}) sums over {depth} values, "
                f"rhs {list(rhs)} (adj_y={adj_y}) over {rdepth}")
    if depth > MAX_DEPTH:
        return f"sums of {depth} products can overflow the int32 accumulator (at most {MAX_DEPTH})"

    def strides(shape: tuple) -> tuple[int, ...]:
        matrix = shape[-1] * shape[-2]
        return tuple(0 if shape[i] == 1 else int(np.prod(shape[i + 1:BATCH_DIMS], dtype=np.int64)) * matrix
                     for i in range(BATCH_DIMS))

    return Geometry(tuple(batches), strides(lx), strides(rx), rows, cols, depth,
                    lhs_row_stride=1 if adj_x else depth, lhs_depth_stride=rows if adj_x else 1,
                    rhs_depth_stride=1 if adj_y else cols, rhs_col_stride=depth if adj_y else 1)


def batch_matmul_codes(lhs: np.ndarray, rhs: np.ndarray, a: BatchMatmulAttrs, dtype: str = "int8") -> np.ndarray:
    """The kernel on integer codes: the reference runs it, and so does the PyTorch side's fake-quantized
    matmul (compress/matmul.py), so the two cannot differ."""
    x = np.asarray(lhs).astype(np.int64) + a.lhs_offset
    y = np.asarray(rhs).astype(np.int64) + a.rhs_offset
    if a.adj_x:
        x = np.swapaxes(x, -1, -2)
    if a.adj_y:
        y = np.swapaxes(y, -1, -2)
    acc = np.matmul(x, y)  # int64: exact, and check() keeps it inside int32
    return clamp(mbqm(acc, a.output_multiplier, a.output_shift) + a.output_offset, a.act_min, a.act_max, dtype)


@register
class BatchMatmul(OpSpec):
    kind = "batch_matmul"
    summary = "int8 product of two activations with batch broadcasting (TFLite BATCH_MATMUL)"
    Attrs = BatchMatmulAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    inputs = (ACTIVATION, ACTIVATION)

    def check(self, op, ins, out):
        a = op.a
        if a.adj_x not in (0, 1) or a.adj_y not in (0, 1):
            return f"adj_x and adj_y must be 0 or 1, got {a.adj_x} and {a.adj_y}"
        geo = geometry(ins[0].shape, ins[1].shape, a.adj_x, a.adj_y)
        if isinstance(geo, str):
            return geo
        rank = max(len(ins[0].shape), len(ins[1].shape))
        want = geo.out_shape[MAX_RANK - rank:]
        if out.shape != want:
            return f"output shape {list(out.shape)} should be {list(want)}"
        return None

    def reference(self, op, args, out_t):
        return batch_matmul_codes(args[0], args[1], op.a, out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        lhs, rhs = (graph.tensors[n].shape for n in op.inputs[:2])
        geo = geometry(lhs, rhs, a.adj_x, a.adj_y)
        return {"batches": geo.batches, "lhs_batch_stride": geo.lhs_batch_stride,
                "rhs_batch_stride": geo.rhs_batch_stride, "rows": geo.rows, "cols": geo.cols, "depth": geo.depth,
                "lhs_row_stride": geo.lhs_row_stride, "lhs_depth_stride": geo.lhs_depth_stride,
                "rhs_depth_stride": geo.rhs_depth_stride, "rhs_col_stride": geo.rhs_col_stride,
                "lhs_offset": a.lhs_offset, "rhs_offset": a.rhs_offset, "out_mult": a.output_multiplier,
                "out_shift": a.output_shift, "out_offset": a.output_offset, "act_min": a.act_min,
                "act_max": a.act_max}
