"""TFLite's int8 elementwise activations, run on all 256 input codes: the table of a `lut` op.

Each function returns what one TFLite kernel writes for the codes -128..127 (an int8 array of
256, indexed by code + 128), computed the way that kernel computes it:
- float tables (LiteRT's LUTPopulate, TFLite Micro's ELU PopulateLookupTable): float32
  arithmetic and the C library's expf / expm1f / tanhf (dmxgen/_libm.py), done once at load
  time, as TFLite does in Prepare;
- integer kernels (TFLite Micro's LOGISTIC and TANH, HARD_SWISH, the RELUs, ABS, RSQRT): the
  kernel's own fixed-point steps, with graph/fixedpoint.py's rounding.
Values are int64 numpy arrays holding int32 (or int16) raws, as in fixedpoint.py.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .._libm import expf, expm1f, tanhf
from ..errors import DmxError
from ..graph.fixedpoint import (INT32_MAX, _newton_reciprocal, _sat_mul_pot, _wrap32, exp_on_negative_values,
                                round_half_away, round_half_away_array, rounding_divide_by_pot)
from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..graph.fixedpoint import quantize_multiplier
from ..graph.quant_params import clamp_range
from ._lstm_int import _srdhm16, clamp16, inv_sqrt_multiplier, wrap16

CODES = np.arange(-128, 128, dtype=np.int64)  # the input codes, in table order
F32 = np.float32


def _int8(x) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.int64), -128, 127).astype(np.int8)


def _f32_to_int32(x: np.float32) -> int:
    """static_cast<int32_t> of a float on x86: out of range (or NaN) gives INT32_MIN."""
    v = float(x)
    return int(v) if math.isfinite(v) and -(2.0**31) <= v < 2.0**31 else -(2**31)


# -- float tables ---------------------------------------------------------------

def float_table(transform: Callable[[np.float32], np.float32], s_in: float, zp_in: int,
                s_out: float, zp_out: int) -> np.ndarray:
    """LUTPopulateInt8 (LiteRT) / PopulateLookupTable (TFLite Micro's ELU): dequantize in float32,
    transform, multiply by the float32 1 / s_out, std::round, add the zero point in float, clamp."""
    inverse = F32(1) / F32(s_out)
    out = np.empty(256, np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # inf as in C; converted below as x86 does
        for i, code in enumerate(CODES):
            y = F32(transform(F32(F32(s_in) * F32(code - zp_in))))
            rescaled = F32(round_half_away_array(F32(y * inverse)))
            out[i] = _f32_to_int32(F32(rescaled + F32(zp_out)))
    return _int8(out)


def logistic_float(x: np.float32) -> np.float32:
    """LiteRT's int8 LOGISTIC transform: 1.0f / (1.0f + std::exp(-x))."""
    with np.errstate(over="ignore"):
        return F32(F32(1) / F32(F32(1) + expf(-x)))


def tanh_float(x: np.float32) -> np.float32:
    return tanhf(x)


def elu_expm1(x: np.float32) -> np.float32:
    """LiteRT's ELU: x < 0 ? std::expm1(x) : x."""
    return expm1f(x) if x < 0 else x


def elu_exp_minus_one(x: np.float32) -> np.float32:
    """TFLite Micro's ELU: x < 0 ? std::exp(x) - 1.0f : x."""
    return F32(expf(x) - F32(1)) if x < 0 else x


# -- TFLite Micro's integer LOGISTIC and TANH (gemmlowp on a Q4.27 input) -------

def q4_params(s_in: float) -> tuple[int, int, int]:
    """(multiplier, left shift, input radius) of TFLM's int8 LOGISTIC / TANH Prepare: s_in * 2**27 by
    frexp, and CalculateInputRadius(4, shift, 31) in double."""
    q, shift = math.frexp(float(F32(s_in)) * (1 << 27))
    multiplier = round_half_away(q * (1 << 31))
    radius = math.floor(15.0 * (1 << 27) / 2.0**shift)
    return multiplier, shift, radius


def _q4_input(s_in: float, zp_in: int):
    multiplier, shift, radius = q4_params(s_in)
    x = CODES - zp_in
    return x, mbqm(x, multiplier, shift), radius


def gemmlowp_logistic(a) -> np.ndarray:
    """gemmlowp::logistic(FixedPoint<int32_t, 4>) -> F0 raw."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, _wrap32(-a))
    if_positive = _sat_mul_pot(_newton_reciprocal(exp_on_negative_values(_wrap32(-magnitude), 4)), 1)
    if_negative = _wrap32(INT32_MAX - if_positive)  # F0::One() is the raw maximum
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def gemmlowp_tanh(a) -> np.ndarray:
    """gemmlowp::tanh(FixedPoint<int32_t, 4>) -> F0 raw: one_minus_x_over_one_plus_x of exp(2 n)."""
    a = np.asarray(a, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, _wrap32(-a))
    x = _newton_reciprocal(exp_on_negative_values(n, 5))  # ExactMulByPot<1>: the same raw as Q5.26
    t = _sat_mul_pot(_wrap32(x - (1 << 29)), 2)
    return np.where(a == 0, 0, np.where(negative, _wrap32(-t), t))


def tflm_logistic(s_in: float, zp_in: int) -> np.ndarray:
    """reference_integer_ops::Logistic on int8: the output is on the 1/256, -128 grid."""
    x, q4, radius = _q4_input(s_in, zp_in)
    y = rounding_divide_by_pot(gemmlowp_logistic(q4), 23) - 128
    return _int8(np.where(x <= -radius, -128, np.where(x >= radius, 127, y)))


def tflm_tanh(s_in: float, zp_in: int) -> np.ndarray:
    """reference_integer_ops::Tanh on int8: the output is on the 1/128, 0 grid."""
    x, q4, radius = _q4_input(s_in, zp_in)
    y = rounding_divide_by_pot(gemmlowp_tanh(q4), 24)
    return _int8(np.where(x <= -radius, -128, np.where(x >= radius, 127, y)))


# -- HARD_SWISH (reference_ops::HardSwish, LiteRT and TFLite Micro alike) ----------

def _to_int16_multiplier(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier: the Q31 multiplier rounded to Q15."""
    return 32767 if m32 >= INT32_MAX - (1 << 15) else (m32 + (1 << 15)) >> 16


def hard_swish_params(s_in: float, s_out: float) -> dict:
    """HardSwishPrepare: the output and "reluish" multipliers, from float32 quotients, as int16 Q15."""
    with np.errstate(all="ignore"):  # inf or 0 as in C; quantize_multiplier refuses inf
        hires = F32(F32(1.0 / 128.0) * F32(s_in))
        out_real, rel_real = float(F32(hires / F32(s_out))), float(F32(hires / F32(F32(3) / F32(32768))))
    out_m, out_e = quantize_multiplier(out_real)
    rel_m, rel_e = quantize_multiplier(rel_real)
    return {"output_multiplier": _to_int16_multiplier(out_m), "output_exponent": out_e,
            "reluish_multiplier": _to_int16_multiplier(rel_m), "reluish_exponent": rel_e}


def _sat_left_shift16(x, amount: int) -> np.ndarray:
    return clamp16(np.asarray(x, dtype=np.int64) * (1 << amount))


def _sdhm16(a, b) -> np.ndarray:
    """SaturatingDoublingHighMul on int16: a * b / 2**15, truncated toward zero."""
    ab = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    high = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((np.asarray(a) == -32768) & (np.asarray(b) == -32768), 32767, high)


def _rdbpot16(x, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT<int16_t>: its mask (1 << exponent) - 1 is narrowed to int16, so an
    exponent of 16 or more makes it -1 (then 0 gives 1 and a negative value -1)."""
    x = np.asarray(x, dtype=np.int64)
    mask = int(wrap16((1 << exponent) - 1))
    threshold = (mask >> 1) + (x < 0)
    return wrap16((x >> exponent) + ((x & mask) > threshold))


def hard_swish(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """reference_ops::HardSwish on int8, with HardSwishPrepare's int16 multipliers."""
    p = hard_swish_params(s_in, s_out)
    hires = wrap16((CODES - zp_in) * (1 << 7))
    preshift = _srdhm16(hires, p["output_multiplier"])
    e = p["reluish_exponent"]
    reluish = _sat_left_shift16(hires, e - 1) if e > 0 else hires
    reluish = _srdhm16(reluish, p["reluish_multiplier"])
    if e > 0:
        reluish = _sat_left_shift16(reluish, 1)
    elif e < 0:
        reluish = _rdbpot16(reluish, -e)
    reluish = (reluish + (1 << 15)) >> 1
    out = _rdbpot16(_sdhm16(reluish, preshift), -p["output_exponent"])
    return _int8(wrap16(out + zp_out))


# -- RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1 ------------------------------------

def relu_requant(s_in: float, zp_in: int, s_out: float, zp_out: int, lo: float | None, hi: float | None) -> np.ndarray:
    """ReluX (LiteRT, and TFLite Micro's RELU): requantize by the float32 s_in / s_out, clamp to
    [lo, hi] on the output grid (QuantizedReluX's roundf bounds)."""
    with np.errstate(all="ignore"):  # inf, as in C; quantize_multiplier refuses it
        real = float(F32(s_in) / F32(s_out))
        bounds = [F32(b) / F32(s_out) for b in (lo, hi) if b is not None]
    multiplier, shift = quantize_multiplier(real)
    if not all(np.isfinite(b) and abs(b) < 2**31 for b in bounds):  # C's int32 conversion would be undefined
        raise DmxError(f"output scale {s_out:g} puts the clamp bounds {lo}, {hi} outside int32")
    qlo, qhi = clamp_range(lo, hi, s_out, zp_out)
    return _int8(np.clip(zp_out + mbqm(CODES - zp_in, multiplier, shift), qlo, qhi))


def tflm_relu6(s_in: float, zp_in: int) -> np.ndarray:
    """TFLite Micro's RELU6 on int8 clamps the input codes to [zp, zp + round(6 / s_in)]; it does not
    requantize (the output's quantization is not read)."""
    with np.errstate(all="ignore"):
        six = int(np.clip(_f32_to_int32(F32(round_half_away_array(F32(6) / F32(s_in)) + zp_in)), -128, 127))
    return _int8(np.where(CODES > six, six, np.where(CODES < zp_in, zp_in, CODES)))  # upper first, as the kernel


# -- ABS, RSQRT, NEG -------------------------------------------------------------

def abs_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """AbsEvalQuantized: |x - zp|, requantized by the float32 s_in / s_out unless the scales are equal."""
    value = np.abs(CODES - zp_in)
    if F32(s_in) == F32(s_out):
        return _int8(value + zp_out)
    with np.errstate(all="ignore"):
        real = float(F32(s_in) / F32(s_out))
    multiplier, shift = quantize_multiplier(real)
    return _int8(mbqm(value, multiplier, shift) + zp_out)


RSQRT_SHIFT = 20  # RsqrtEvalQuantized's kShift: 1 / sqrt(x) is held as x * 2**20


def rsqrt_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """RsqrtEvalQuantized on int8: GetInvSqrtQuantizedMultiplierExp of each value, times
    1 / (sqrtf(s_in) * s_out). TFLite stops with an error on a code below the input zero point
    ("Rsqrt is only defined for positive values"); the table gives those 127, as for x == zp."""
    with np.errstate(all="ignore"):
        product = float(F32(np.sqrt(F32(s_in)) * F32(s_out)))
    multiplier, shift = quantize_multiplier(1.0 / product if product else math.inf)  # C's 1. / 0. is inf
    out = np.full(256, 127, np.int64)
    for i, value in enumerate(CODES - zp_in):
        if value > 0:
            inv, inv_shift = inv_sqrt_multiplier(int(value))
            data = mbqm(1, inv, inv_shift + RSQRT_SHIFT)
            out[i] = int(mbqm(data, multiplier, shift - RSQRT_SHIFT)) + zp_out
    return _int8(out)


def neg_table() -> np.ndarray:
    """LiteRT's int8 NEG negates the codes (reference_ops::Negate), quantization unread; -(-128) wraps."""
    return ((-CODES + 128) % 256 - 128).astype(np.int8)

