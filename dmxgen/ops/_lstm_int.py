"""The int16 arithmetic of TFLite's integer LSTM (8x8_16): gate activations and element-wise steps.

Two implementations, one per golden:
- LiteRT (tensorflow/lite/kernels/lstm_eval.cc, portable_tensor_utils): gemmlowp's fixed-point
  logistic and tanh on int16 raws (FixedPoint<int16_t, I>), products rounded by a power of two.
- TFLite Micro (micro/kernels/lstm_eval.h): reference_integer_ops::Logistic / Tanh on int16,
  which interpolate a 256-entry sigmoid table, and MultiplyByQuantizedMultiplier products.

Values are numpy int64 arrays holding int16 (or int32) raws; `wrap16` reproduces C's narrowing.
"""
from __future__ import annotations

import numpy as np

from ..graph.fixedpoint import INT32_MAX, _sat_mul_pot, _wrap32, rounding_divide_by_pot
from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..graph.fixedpoint import saturating_rounding_doubling_high_mul as srdhm

I16_MIN, I16_MAX = -(2**15), 2**15 - 1


def wrap16(x) -> np.ndarray:
    """static_cast<int16_t> of an int: two's-complement wrap."""
    return (np.asarray(x, dtype=np.int64) + 2**15) % 2**16 - 2**15


def clamp16(x) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.int64), I16_MIN, I16_MAX)


# -- gemmlowp FixedPoint<int16_t, I> -------------------------------------------

def _srdhm16(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul for int16 (the product of two FixedPoints)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    high = np.where(v >= 0, v >> 15, -((-v) >> 15))  # C division truncates toward zero
    return np.where((a == b) & (a == I16_MIN), I16_MAX, wrap16(high))


def _sat_pot16(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int16 raws: a rounding right shift, or a
    left shift saturated to int16 (its thresholds +-(2**(15 - exponent) - 1) are exactly that clamp)."""
    x = np.asarray(x, dtype=np.int64)
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return clamp16(x << exponent)


def _const16(raw32: int) -> int:
    """GEMMLOWP_CHECKED_FIXEDPOINT_CONSTANT for an int16 FixedPoint: the int32 raw rounded by 2**16."""
    return int(rounding_divide_by_pot(np.int64(raw32), 16))


def _exp_quarter16(a) -> np.ndarray:
    """exp on [-1/4, 0), F0 in and out (gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl)."""
    constant_term, one_third = _const16(1895147668), _const16(715827883)
    x = wrap16(a + (1 << 12))  # + 1/8
    x2 = _srdhm16(x, x)
    x3 = _srdhm16(x2, x)
    x4 = _srdhm16(x2, x2)
    x4_over_4 = _sat_pot16(x4, -2)
    poly = _sat_pot16(wrap16(_srdhm16(wrap16(x4_over_4 + x3), one_third) + x2), -1)
    return clamp16(constant_term + _srdhm16(constant_term, wrap16(x + poly)))  # AddSaturatingIf16Bit


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
           (3, 720401), (4, 242))


def _exp_negative16(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: FixedPoint<int16, integer_bits> <= 0 -> F0."""
    a = np.asarray(a, dtype=np.int64)
    frac = 15 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = wrap16((a & (quarter - 1)) - quarter)
    result = _exp_quarter16(_sat_pot16(a_mod, integer_bits))
    remainder = wrap16(a_mod - a)
    for exponent, mult in _BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where((remainder & bit) != 0, _srdhm16(result, _const16(mult)), result)
    if integer_bits > 5:
        result = np.where(a < _const16(-(1 << (36 - integer_bits))), 0, result)
    return np.where(a == 0, I16_MAX, result)


def _newton_reciprocal16(a) -> np.ndarray:
    """The Newton-Raphson iterate of gemmlowp's one_over_one_plus_x_for_x_in_0_1 (an F2 raw)."""
    s = np.asarray(a, dtype=np.int64) + I16_MAX
    half_den = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))  # RoundingHalfSum, C division
    x = wrap16(_const16(1515870810) + _srdhm16(half_den, _const16(-1010580540)))
    for _ in range(3):
        one_minus = wrap16((1 << 13) - _srdhm16(half_den, x))
        x = wrap16(x + _sat_pot16(_srdhm16(x, one_minus), 2))
    return x


def gemmlowp_logistic16(a, integer_bits: int) -> np.ndarray:
    """gemmlowp::logistic(FixedPoint<int16_t, integer_bits>) -> F0 raw (ApplySigmoid uses F3)."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, wrap16(-a))
    if_positive = _sat_pot16(_newton_reciprocal16(_exp_negative16(wrap16(-magnitude), integer_bits)), 1)
    if_negative = wrap16(I16_MAX - if_positive)
    return np.where(a == 0, 1 << 14, np.where(positive, if_positive, if_negative))


def gemmlowp_tanh16(a, integer_bits: int) -> np.ndarray:
    """gemmlowp::tanh(FixedPoint<int16_t, integer_bits>) -> F0 raw (ApplyTanh)."""
    a = np.asarray(a, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, wrap16(-a))
    x = _newton_reciprocal16(_exp_negative16(n, integer_bits + 1))
    t = _sat_pot16(wrap16(x - (1 << 13)), 2)  # one_minus_x_over_one_plus_x
    return np.where(a == 0, 0, np.where(negative, wrap16(-t), t))


# -- TFLite Micro's reference_integer_ops::Logistic / Tanh on int16 -------------

# sigmoid(i / 24) in 0.16 fixed point (tensorflow/lite/kernels/internal/common.h): the table both
# int16 kernels interpolate; TFLite's numbers, not a rounding of the formula (44 entries differ).
SIGMOID_TABLE_U16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432,
    42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475,
    49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485,
    55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519,
    59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036,
    62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405,
    64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179,
    65194, 65208, 65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337,
    65345, 65352, 65360, 65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
    65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517,
    65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525, 65525,
    65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533,
    65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535], dtype=np.int64)


def _scaled_input(x, multiplier: int, left_shift: int) -> np.ndarray:
    """The kernels' input rescale: a zero multiplier means a power-of-two scale (3 << shift)."""
    if multiplier == 0:
        multiplier, left_shift = 3 << left_shift, 0
    rounding = (1 << (left_shift - 1)) if left_shift > 0 else 0
    return (np.asarray(x, dtype=np.int64) * multiplier + rounding) >> left_shift


def _interpolate(magnitude, frac_bits: int):
    """Table lookup with linear interpolation on the low `frac_bits` bits, and the saturation flag."""
    index = magnitude >> frac_bits
    saturated = index >= 255
    i = np.minimum(index, 254)
    lo, hi = SIGMOID_TABLE_U16[i], SIGMOID_TABLE_U16[i + 1]
    return (lo << frac_bits) + (magnitude & ((1 << frac_bits) - 1)) * (hi - lo), saturated


def tflm_logistic16(x, multiplier: int = 0, left_shift: int = 0) -> np.ndarray:
    """reference_integer_ops::Logistic on int16 (TFLM's LSTM gates: multiplier 0, shift 0)."""
    v = _scaled_input(x, multiplier, left_shift)
    result, saturated = _interpolate(np.abs(v), 9)
    result = np.where(saturated, 0x7FFF << 10, result)
    result = np.where(v >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1)
    return wrap16(result >> 10)


def tflm_tanh16(x, multiplier: int, left_shift: int) -> np.ndarray:
    """reference_integer_ops::Tanh on int16."""
    v = _scaled_input(x, multiplier, left_shift)
    result, saturated = _interpolate(np.abs(v), 8)
    result = np.where(saturated, 0xFFFF << 8, result)
    result = np.where(v >= 0, result - (1 << 23) + (1 << 7), -result + (1 << 23) + (1 << 7) - 1)
    return wrap16(result >> 8)


def tflm_tanh_for_scale(x, scale_power: int) -> np.ndarray:
    """TFLM lstm_eval's Tanh(cell_state_scale_power, ...): the input of scale 2**scale_power as Q3.12."""
    left_shift = 15 + scale_power - 3
    if left_shift < 0:
        return tflm_tanh16(x, 3, -left_shift)
    return tflm_tanh16(x, 0, left_shift)


# -- LiteRT's integer layer norm of a gate (PortableApplyLayerNorm) ------------

def inv_sqrt_multiplier(x: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp(x, reverse_shift=-1): 1/sqrt(x) as (Q31 multiplier, left shift),
    by five gemmlowp Newton-Raphson steps on F3."""
    if x <= 1:
        return INT32_MAX, 0
    shift = 11
    while x >= 1 << 29:
        x //= 4
        shift += 1
    pairs = ((32 - x.bit_length()) - 1) // 2 - 1  # CountLeadingZeros - 1, in bit pairs, less one
    shift -= pairs
    x <<= 2 * pairs
    half_input = int(rounding_divide_by_pot(np.int64(x >> 1), 1))
    half_three = (1 << 28) + (1 << 27)
    r = np.int64(1 << 28)  # F3 one
    for _ in range(5):
        r3 = _sat_mul_pot(srdhm(srdhm(r, r), r), 6)
        r = _sat_mul_pot(_wrap32(srdhm(half_three, r) - srdhm(half_input, r3)), 3)
    r = int(srdhm(r, 1518500250))  # * sqrt(2) / 2
    if shift < 0:
        r, shift = int(_wrap32(np.int64(r) << -shift)), 0
    return r, -shift


def layer_norm16(gate, weights, bias, multiplier: int, shift: int, variance_guard: int) -> np.ndarray:
    """A [batch, n] int16 gate normalized per row, times the int16 coefficients plus the int32 bias,
    requantized to Q3.12 (mean and variance in 2**10 units; integer divisions truncate as C's)."""
    gate = np.asarray(gate, dtype=np.int64)
    n = gate.shape[-1]
    out = np.empty_like(gate)
    for row in range(gate.shape[0]):
        v = gate[row]
        total, total_sq = int(v.sum()), int((v * v).sum())
        mean = _c_div(total * 1024, n)
        variance = _c_div(total_sq * ((1 << 20) // n) - mean * mean, 1 << 20)
        inv_a, inv_b = inv_sqrt_multiplier(variance if variance >= 1 else variance_guard)
        rescaled = mbqm(_wrap32(1024 * v - mean), inv_a, inv_b)
        scaled = _wrap32(_wrap32(rescaled * np.asarray(weights, np.int64)) + np.asarray(bias, np.int64))
        rounded = np.where(scaled > 0, scaled + 512, scaled - 512)
        val = np.where(rounded >= 0, rounded // 1024, -((-rounded) // 1024))
        out[row] = clamp16(mbqm(val, multiplier, shift + 12))
    return out


def _c_div(a: int, b: int) -> int:
    """C's integer division (toward zero) of Python ints."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q
