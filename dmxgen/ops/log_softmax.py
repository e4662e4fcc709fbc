"""log_softmax: TFLite's int8 LOG_SOFTMAX over the last axis (reference_integer_ops::LogSoftmax, gemmlowp).

Per row: the differences to the row's maximum in Q5.26, their exps summed in Q12.19, the log of the sum
(log_x_for_x_greater_than_or_equal_to_1 in Q5.26), then (diff - log) onto the output's fixed 16/256,
zero point 127 grid; differences below the adjusted diff_min give -128.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import (INT32_MAX, INT32_MIN, _newton_reciprocal, _sat_mul_pot, _srdhm, _wrap32,
                                exp_on_negative_values, rounding_divide_by_pot)
from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._requant import saturate
from ._spec import OpSpec

INPUT_BITS, ACCUM_BITS, OUTPUT_BITS = 5, 12, 4
OUTPUT_ZERO_POINT = 127


@dataclass(frozen=True)
class LogSoftmaxAttrs:
    input_multiplier: int  # beta * s_in * 2^26 (PreprocessSoftmaxScaling, 5 integer bits)
    input_left_shift: int
    reverse_multiplier: int  # 2^(31 - left shift) / multiplier (PreprocessLogSoftmaxScalingExp)
    reverse_right_shift: int
    diff_min: int  # -CalculateInputRadius(5, left shift)


def _sat_shift_left(x, e) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOTParam for exponents 0..31 given per element."""
    x, e = np.asarray(x, np.int64), np.asarray(e, np.int64)
    threshold = (np.int64(1) << (31 - e)) - 1
    r = _wrap32(x << e)
    return np.where(e == 0, x, np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, r)))


def _clz(x) -> np.ndarray:
    x = np.asarray(x, np.int64) & 0xFFFFFFFF
    return 32 - np.array([int(v).bit_length() for v in x.reshape(-1)], np.int64).reshape(x.shape)


def _sat_add(a, b) -> np.ndarray:
    return np.clip(np.asarray(a, np.int64) + b, INT32_MIN, INT32_MAX)


def log_of_sum(z) -> np.ndarray:
    """log_x_for_x_greater_than_or_equal_to_1<5>(z), z a Q12.19 raw >= 1.0: a Q5.26 raw."""
    z = np.asarray(z, np.int64)
    accum_bits = 6  # the output's 5 integer bits and one of headroom
    log_2, sqrt_sqrt_half, sqrt_half = 1488522236, 1805811301, 1518500250
    alpha_n, alpha_d, alpha_i, alpha_f = 117049297, 127690142, 1057819769, 638450708
    shifted_quarter = int(rounding_divide_by_pot(536870912, accum_bits))
    clz_a = _clz(z)
    r_a = _sat_shift_left(_srdhm(_sat_shift_left(z, clz_a - 1), sqrt_half), 1)
    z_a_adj = _sat_add(_sat_shift_left(ACCUM_BITS - clz_a, 31 - accum_bits), shifted_quarter)
    z_b_headroom = _clz(_srdhm(z, sqrt_half)) - 1
    r_b = _sat_shift_left(z, z_b_headroom)
    z_b_adj = _sat_add(_sat_shift_left(ACCUM_BITS - z_b_headroom, 31 - accum_bits), -shifted_quarter)
    r, z_adj = np.minimum(r_a, r_b), np.maximum(z_a_adj, z_b_adj)
    s = r + sqrt_sqrt_half
    p = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))  # RoundingHalfSum: (sum + sign) / 2, C division
    q = _wrap32(2 * _wrap32(r - sqrt_sqrt_half))
    common_sq = _srdhm(q, q)
    num = _wrap32(_srdhm(q, r) + _srdhm(_srdhm(q, common_sq), alpha_n))
    denom_minus_one = _wrap32(_srdhm(p, _wrap32(alpha_i + q + _srdhm(alpha_d, common_sq))) + _srdhm(alpha_f, q))
    recip = _sat_mul_pot(_newton_reciprocal(denom_minus_one), 1)  # one_over_one_plus_x_for_x_in_0_1
    num_scaled = rounding_divide_by_pot(num, accum_bits)
    return _sat_mul_pot(_wrap32(_srdhm(z_adj, log_2) + _srdhm(num_scaled, recip)), accum_bits - INPUT_BITS)


@register
class LogSoftmax(OpSpec):
    kind = "log_softmax"
    summary = "int8 log-softmax over the last axis (output on 16/256, zp 127)"
    Attrs = LogSoftmaxAttrs
    targets = ("c", "hls", "tflite")

    def check(self, op, ins, out):
        a = op.a
        if ins[0].shape != out.shape:
            return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
        if not 1 <= a.input_left_shift <= 31 or not 0 <= a.reverse_right_shift <= 31:
            return f"shifts {a.input_left_shift} and {a.reverse_right_shift} are outside 1..31 and 0..31"
        # |diff| * 2^shift stays below 2^31 for every diff >= diff_min (CalculateInputRadius)
        if -a.diff_min * (1 << a.input_left_shift) > 31 << 26:
            return f"diff_min {a.diff_min} does not bound the rescaled differences (left shift {a.input_left_shift})"
        depth = ins[0].shape[-1] if ins[0].shape else 1
        if depth >= 1 << ACCUM_BITS:  # each exp is at most 2^19 in Q12.19
            return f"rows of {depth} values can overflow the Q12 sum of exps (at most {(1 << ACCUM_BITS) - 1})"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64)
        rows = x.reshape(-1, x.shape[-1] if x.ndim else 1)
        diff = rows - rows.max(axis=1, keepdims=True)
        q5 = mbqm(np.maximum(diff, a.diff_min), a.input_multiplier, a.input_left_shift)  # what is kept fits
        exps = rounding_divide_by_pot(exp_on_negative_values(q5, INPUT_BITS), ACCUM_BITS)
        total = _wrap32(np.where(diff >= a.diff_min, exps, 0).sum(axis=1))
        log = log_of_sum(total)[:, None]
        adjusted = np.maximum(a.diff_min - 1, mbqm(_wrap32(log + INT32_MIN), a.reverse_multiplier,
                                                   -a.reverse_right_shift))
        y = rounding_divide_by_pot(_wrap32(q5 - log), 31 - INPUT_BITS - OUTPUT_BITS) + OUTPUT_ZERO_POINT
        out = np.where(diff > adjusted, saturate(y, out_t.dtype), -128)
        return out.reshape(out_t.shape)

    def kernel_params(self, graph, op):
        t, a = graph.tensors[op.inputs[0]], op.a
        depth = t.shape[-1] if t.shape else 1
        return {"rows": t.size // depth if depth else 0, "depth": depth, "input_multiplier": a.input_multiplier,
                "input_left_shift": a.input_left_shift, "reverse_multiplier": a.reverse_multiplier,
                "reverse_right_shift": a.reverse_right_shift, "diff_min": a.diff_min}
