"""TFLite's integer rounding, the one place it lives in Python.

Every function works elementwise on numpy arrays (or Python ints) and returns
exactly what TFLite's C++ (tensorflow/lite/kernels/internal/common.h) returns,
including saturation at INT32_MIN * INT32_MIN and C's truncating division.
The C templates hold the one C implementation; tests/test_fixedpoint.py keeps
the two equal.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DmxError

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap to int32, as C's int32 arithmetic does in practice."""
    return ((np.asarray(x, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def round_half_away_array(x) -> np.ndarray:
    """std::round (TfLiteRound) on every element: ties away from zero; float64 in, integral float64 out.

    The one definition of that rounding; compress/quant.py's torch op for tensors
    in autograd is tested equal to it.
    """
    x = np.asarray(x, dtype=np.float64)
    whole = np.trunc(x)  # x - whole is exact, so 0.49999999999999994 stays below the half (floor(x + 0.5) is 1)
    return np.where(np.abs(x - whole) >= 0.5, whole + np.sign(x), whole)


def round_half_away(x: float) -> int:
    """std::round of one number, as a Python int."""
    return int(round_half_away_array(x))


def quantize_float(x, scale: float, zero_point: int, dtype: str = "int8") -> np.ndarray:
    """TFLite's float QUANTIZE (AffineQuantize): float32 x / float32 scale, std::round, + zp, clamp.

    The one float -> integer rounding: model inputs given as floats go through
    it, as does the reference's QUANTIZE kernel. A NaN, or a rounded value
    outside int32, converts to INT32_MIN and the zero point is then added with
    int32 wrap-around: what LiteRT computes on the host (x86's float -> int
    conversion), so NaN and +-inf give -128 with a zero point >= 0 and 127
    with a negative one. The C and HLS templates do the same without UB.
    """
    info = np.iinfo(dtype)
    with np.errstate(all="ignore"):  # inf / NaN inputs are defined below, not warned about
        real = (np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.float64)
        q = round_half_away_array(real)  # exact in float64 for float32 values
    in_range = (q >= INT32_MIN) & (q <= INT32_MAX)  # False for NaN
    q32 = np.where(in_range, q, INT32_MIN).astype(np.int64)
    return np.clip(_wrap32(q32 + int(zero_point)), info.min, info.max).astype(dtype)


# TFLite's kernels shift left by at most 30 (QuantizeMultiplier saturates beyond that when built
# with single rounding; the double-rounding kernels overflow): larger multipliers are refused.
MAX_SHIFT = 30


def quantize_multiplier(real: float, max_shift: int = MAX_SHIFT) -> tuple[int, int]:
    """Real multiplier -> (int32 Q31 multiplier, shift), TFLite's QuantizeMultiplier.

    real = multiplier * 2**(shift - 31); a positive shift is a left shift.
    Tiny multipliers (shift < -31) flush to (0, 0) as in TFLite; a shift above
    `max_shift` is refused, as no kernel computes it without overflow.
    """
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0:  # scales whose quotient overflows float32 (or bad input)
        raise DmxError(f"requantization multiplier {real:g} is not a finite positive number "
                       "(the scales' quotient overflows float32)")
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    if shift > max_shift:
        raise DmxError(f"requantization multiplier {real:.6g} needs a left shift of {shift}, more than the "
                       f"{max_shift} TFLite's kernels implement (an output scale far too small for its inputs?)")
    return int(q_fixed), int(shift)


def quantize_multiplier_array(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.ravel(reals)]
    mult = np.array([p[0] for p in pairs], dtype=np.int32)
    shift = np.array([p[1] for p in pairs], dtype=np.int32)
    return mult, shift


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """(a * b * 2 + 2**31) >> 32 with TFLite's nudge and truncation toward zero."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    v = ab + nudge
    # C integer division by 2**31 truncates toward zero.
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))
    return np.where(overflow, INT32_MAX, _wrap32(high))


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2**exponent rounded half away from zero (gemmlowp's RoundingDivideByPOT)."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), int32 result.

    The same numbers as rounding_divide_by_pot(saturating_rounding_doubling_high_mul(...)) in a few
    passes, as every conv and FC output goes through it: the nudged high multiply truncated toward
    zero is floor((a*b + 2^30) / 2^31), and rounding half away from zero by 2^e (e >= 1) is
    (v + 2^(e-1) - (v < 0)) >> e.
    """
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = (x << left if np.any(left) else x).astype(np.int32).astype(np.int64)  # C's int32 wrap
    high = a * m
    high += 1 << 30
    high >>= 31
    if np.any(m == INT32_MIN):  # the one product that saturates
        high = np.where((a == INT32_MIN) & (m == INT32_MIN), INT32_MAX, high)
    if not np.any(right):
        return high
    return (high + ((np.int64(1) << right) >> 1) + ((high >> 63) & -(right > 0).astype(np.int64))) >> right


def multiply_by_quantized_multiplier_single(x, multiplier, shift) -> np.ndarray:
    """One rounding: (x * multiplier + 2**(t-1)) >> t with t = 31 - shift.

    dmxgen's own power-of-two requantization (torch flow) rounds this way; LiteRT's
    reference FULLY_CONNECTED rounds once too but ties away from zero (the _away
    version below). TFLite Micro and every other kernel use the double-rounding
    version above. They differ when a rounding lands exactly on a half.
    """
    x = np.asarray(x, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    # x split at bit 32 so that an int64 accumulator (16x8 layers) times M does not overflow int64:
    # floor(((hi * 2^32 + lo) * M + 2^(t-1)) / 2^t) with 0 <= lo < 2^32, the same number as before.
    # With t < 32 an |x| beyond 2^32 times a Q31 multiplier (|M| >= 2^30, or 0) saturates any output: x is cut there.
    wide = total >= 32
    x = np.where(wide, x, np.clip(x, -(2**32), 2**32))
    hi, lo = x >> 32, x & 0xFFFFFFFF
    high, low = hi * m, lo * m  # |low| < 2^63
    # t >= 32: the rounding term joins the high half (t > 32) or the low one (t = 32, 2^31)
    t_wide = np.where(wide, total - 32, 0)
    up = np.where(total > 32, np.int64(1) << np.maximum(total - 33, 0), 0)
    wide_result = (high + up + ((low + np.where(total == 32, np.int64(1) << 31, 0)) >> 32)) >> t_wide
    t_narrow = np.where(wide, 1, total)
    narrow_result = (high << np.where(wide, 0, 32 - total)) + ((low + (np.int64(1) << (t_narrow - 1))) >> t_narrow)
    return np.where(wide, wide_result, narrow_result)


def multiply_by_quantized_multiplier_away(x, multiplier, shift) -> np.ndarray:
    """One rounding, ties away from zero: sign(x) * ((|x| * multiplier + 2**(t-1)) >> t), t = 31 - shift.

    What LiteRT's reference int8 FULLY_CONNECTED computes (measured: with a power-of-two real
    multiplier, where ties are common, the half-up rounding above differs on negative ties).
    The single rounding of |x| keeps its int64 split for wide accumulators; multiplier >= 0.
    """
    x = np.asarray(x, dtype=np.int64)
    mag = multiply_by_quantized_multiplier_single(np.abs(np.maximum(x, -INT64_MAX)), multiplier, shift)
    return np.where(x < 0, -mag, mag)


def multiply_by_quantized_multiplier_int64(x, multiplier, shift) -> np.ndarray:
    """TFLite's 64-bit MultiplyByQuantizedMultiplier (16x8 CONV_2D, DEPTHWISE_CONV_2D, and
    FULLY_CONNECTED in TFLite Micro): the Q31 multiplier reduced to 16 bits
    ((M + 2^15) >> 16, 0x7FFF from 0x7FFF0000 up), then one rounding by 15 - shift.
    Exact in int64 for |x| < 2^47, the accumulators TFLite allows."""
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - np.asarray(shift, dtype=np.int64)
    return (x * reduced + (np.int64(1) << (total - 1))) >> total


# rounding attr of conv2d / depthwise_conv2d / fully_connected -> the requantization it names
ROUNDINGS = {"double": multiply_by_quantized_multiplier, "single": multiply_by_quantized_multiplier_single,
             "away": multiply_by_quantized_multiplier_away, "reduced": multiply_by_quantized_multiplier_int64}


# The constants derived from scales (multipliers of ADD, MUL, conv; clamp bounds) are in quant_params.py.


# --- gemmlowp fixed-point helpers, for TFLite Micro's integer softmax ---------
# Raw values are int32 held in int64 arrays; `_wrap32` reproduces C's wrap.

def _srdhm(a, b):
    return saturating_rounding_doubling_high_mul(a, b)


def _sat_mul_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT."""
    x = np.asarray(x, dtype=np.int64)
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    if exponent == 0:
        return x
    threshold = (1 << (31 - exponent)) - 1
    r = _wrap32(x << exponent)
    r = np.where(x > threshold, INT32_MAX, r)
    return np.where(x < -threshold, INT32_MIN, r)


def _exp_quarter(a):
    """exp on [-1/4, 0) for Q0.31 input (gemmlowp)."""
    constant_term = 1895147668
    one_third = 715827883
    x = _wrap32(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _sat_mul_pot(x4, -2)
    poly = _sat_mul_pot(_wrap32(_srdhm(_wrap32(x4_over_4 + x3), one_third) + x2), -1)
    return _wrap32(constant_term + _srdhm(constant_term, _wrap32(x + poly)))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: Q(integer_bits) input <= 0 -> Q0.31 output."""
    a = np.asarray(a, dtype=np.int64)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    mask = one_quarter - 1
    a_mod = _wrap32((a & mask) - one_quarter)
    result = _exp_quarter(_sat_mul_pot(a_mod, integer_bits))
    remainder = _wrap32(a_mod - a)
    for exponent, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                           (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where((remainder & bit) != 0, _srdhm(result, mult), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal(a):
    """The Newton-Raphson iterate x ~ 1 / (1 + a) (an F2 raw) of gemmlowp's
    one_over_one_plus_x_for_x_in_0_1 and one_minus_x_over_one_plus_x_for_x_in_0_1, Q0.31 in."""
    s = np.asarray(a, dtype=np.int64) + INT32_MAX
    half_den = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))  # (sum + sign) / 2, C division
    x = _wrap32(1515870810 + _srdhm(half_den, -1010580540))
    one_q2 = 1 << 29
    for _ in range(3):
        hx = _srdhm(half_den, x)
        x = _wrap32(x + _sat_mul_pot(_srdhm(x, _wrap32(one_q2 - hx)), 2))
    return x


def _one_over_one_plus_x(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Newton-Raphson), Q0.31 in and out."""
    return _sat_mul_pot(_newton_reciprocal(a), 1)


def softmax_gemmlowp(x: np.ndarray, attrs: dict) -> np.ndarray:
    """TFLite Micro's int8 softmax over the last axis (reference_ops::Softmax)."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    valid = diff >= attrs["diff_min"]
    rescaled = _srdhm(diff * (1 << attrs["input_left_shift"]), attrs["input_multiplier"])
    exps = exp_on_negative_values(rescaled, 5)
    sum_exps = np.where(valid, rounding_divide_by_pot(exps, 12), 0).sum(axis=1)
    sum_exps = _wrap32(sum_exps)
    # GetReciprocal with 12 integer digits
    u = sum_exps.astype(np.uint64) & 0xFFFFFFFF
    clz = np.array([32 - int(v).bit_length() for v in u], dtype=np.int64)
    bits_over_unit = 12 - clz
    shifted = _wrap32(((u << clz.astype(np.uint64)) & 0xFFFFFFFF).astype(np.int64) - (1 << 31))
    scale = _one_over_one_plus_x(shifted)
    out = rounding_divide_by_pot(_srdhm(scale[:, None], exps), (bits_over_unit + 31 - 8)[:, None]) - 128
    out = np.where(valid, np.clip(out, -128, 127), -128)
    return out.reshape(x.shape)
