"""l2_norm: TFLite's int8 L2_NORMALIZATION over the last axis (reference_integer_ops::L2Normalization).

Per row: acc = sum (x - zp)^2 in int32, GetInvSqrtQuantizedMultiplierExp(acc) (gemmlowp fixed point:
normalise acc by pairs of bits, five Newton-Raphson steps on 3 integer bits, times sqrt(2)/2), then
each element times that multiplier onto the fixed 1/128, zero point 0 grid, saturated to int8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import INT32_MAX, _sat_mul_pot, _srdhm, _wrap32
from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._requant import saturate
from ._spec import OpSpec

OUTPUT_SHIFT = 7  # the output's 1/128 grid (kOutputScale)
MAX_DEPTH = (2**31 - 1) // (255 * 255)  # the int32 sum of squares cannot wrap


@dataclass(frozen=True)
class L2NormAttrs:
    input_offset: int  # -zero point of the input


def inv_sqrt_multiplier_exp(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GetInvSqrtQuantizedMultiplierExp with kReverseShift: (multiplier, shift, left-positive) per acc >= 0."""
    acc = np.asarray(acc, np.int64)
    small = acc <= 1  # 0 and 1: INT32_MAX, shift 0
    x = np.where(small, 2, acc)
    shift = np.full(x.shape, 11, np.int64)
    while np.any(x >= 1 << 29):
        big = x >= 1 << 29
        x, shift = np.where(big, x // 4, x), shift + big
    clz = 32 - np.array([int(v).bit_length() for v in x.reshape(-1)], np.int64).reshape(x.shape)
    pairs = (clz - 1) // 2 - 1
    shift, x = shift - pairs, x << (2 * pairs)
    half_input = _sat_mul_pot(x >> 1, -1)
    half_three = (1 << 28) + (1 << 27)
    r = np.full(x.shape, 1 << 28, np.int64)  # F3 one
    for _ in range(5):
        r3 = _sat_mul_pot(_srdhm(_srdhm(r, r), r), 6)  # Rescale<3> of an F9
        r = _sat_mul_pot(_wrap32(_srdhm(half_three, r) - _srdhm(half_input, r3)), 3)
    r = _srdhm(r, 1518500250)  # sqrt(2) / 2 in Q0.31
    left = np.where(shift < 0, -shift, 0)
    r, shift = _wrap32(r << left), np.maximum(shift, 0)
    return np.where(small, INT32_MAX, r), np.where(small, 0, -shift)


@register
class L2Norm(OpSpec):
    kind = "l2_norm"
    summary = "int8 L2 normalization over the last axis (output on 1/128, zp 0)"
    Attrs = L2NormAttrs
    targets = ("c", "hls", "tflite")

    def inplace(self, op) -> bool:
        return False  # not elementwise: each row is read twice (its norm, then the scaling)

    def check(self, op, ins, out):
        if ins[0].shape != out.shape:
            return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
        if not -128 <= op.a.input_offset <= 128:
            return f"input_offset {op.a.input_offset} is not minus an int8 zero point"
        depth = ins[0].shape[-1] if ins[0].shape else 1
        if depth > MAX_DEPTH:
            return f"rows of {depth} values can overflow the int32 sum of squares (at most {MAX_DEPTH})"
        return None

    def reference(self, op, args, out_t):
        x = args[0].astype(np.int64) + op.a.input_offset
        rows = x.reshape(-1, x.shape[-1] if x.ndim else 1)
        mult, shift = inv_sqrt_multiplier_exp((rows * rows).sum(axis=1))
        y = mbqm(rows, mult[:, None], shift[:, None] + OUTPUT_SHIFT)
        return saturate(y, out_t.dtype).reshape(out_t.shape)

    def kernel_params(self, graph, op):
        t = graph.tensors[op.inputs[0]]
        depth = t.shape[-1] if t.shape else 1
        return {"rows": t.size // depth if depth else 0, "depth": depth, "in_offset": op.a.input_offset}
