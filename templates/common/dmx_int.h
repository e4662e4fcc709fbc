/* dmx_int.h: TFLite's integer arithmetic, the C twin of dmxgen/graph/fixedpoint.py.
 * One file for every target: the exported C kernels (kernels.h) and the HLS kernels
 * (hls/kernels/dmx_fixedpoint.h) include it, so both round exactly alike. Plain C99 that is
 * also valid C++ (g++ csim, Vitis HLS): static inline functions, <stdint.h> only, no
 * undefined behaviour for any argument in the documented ranges. dmxgen copies it unchanged into
 * each export: edit templates/common/dmx_int.h, not a copy.
 *
 * DMX_INT_UNROLL marks the fixed-trip loops; it is empty here and the HLS wrapper defines it
 * as its unroll pragma (the schedules stay with the HLS kernels). */
#ifndef DMX_INT_H
#define DMX_INT_H

#include <stdint.h>

#ifndef DMX_INT_UNROLL
#define DMX_INT_UNROLL
#endif

/** Two's-complement wrap to 32 bits (what int32 hardware does on overflow), without UB. */
static inline int32_t dmx_wrap32(int64_t x)
{
    return (int32_t)(uint32_t)(uint64_t)x;
}

/** a + b wrapped to 32 bits, as the reference does. */
static inline int32_t dmx_wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/** TFLite SaturatingRoundingDoublingHighMul: (a*b*2 + 2^31) >> 32 with its nudge and truncation.
 *  TFLite writes it as (ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31 with C's truncating division;
 *  floor((ab + 2^30) / 2^31), one arithmetic shift, is the same number for every ab. The one
 *  product that does not fit, INT32_MIN * INT32_MIN, saturates to INT32_MAX. */
static inline int32_t dmx_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/** gemmlowp RoundingDivideByPOT: x / 2^e rounded half away from zero, 0 <= e <= 31. */
static inline int32_t dmx_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/** The same in 64 bits for 0 <= e <= 62 (softmax's final shift can exceed 31). */
static inline int64_t dmx_rdbpot64(int64_t x, int32_t e)
{
    const int64_t mask = ((int64_t)1 << e) - 1;
    const int64_t remainder = x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/** TFLite MultiplyByQuantizedMultiplier (two roundings); -31 <= shift <= 31, shift > 0 shifts left. */
static inline int32_t dmx_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return dmx_rdbpot(dmx_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/** One rounding: (x*M + 2^(t-1)) >> t with t = 31 - shift, in int64 (TFLite's reference FC); shift <= 30. */
static inline int64_t dmx_mbqm_single(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t t = 31 - shift;
    return ((int64_t)x * multiplier + ((int64_t)1 << (t - 1))) >> t;
}

/** dmx_mbqm_single of an int64 accumulator (16x8 FULLY_CONNECTED in LiteRT), exact without a 128-bit
 *  type: x split at bit 32 (each half's product fits int64), the rounding term added to the half it
 *  fits. With t < 32 an |x| beyond 2^32, which times a Q31 multiplier (|M| >= 2^30, or 0) saturates
 *  any output, is cut there. fixedpoint.py's single rounding computes the same. */
static inline int64_t dmx_mbqm_single64(int64_t x, int32_t multiplier, int32_t shift)
{
    const int32_t t = 31 - shift;
    const int64_t cut = (int64_t)1 << 32;
    const int64_t xc = t >= 32 ? x : (x < -cut ? -cut : (x > cut ? cut : x));
    const int64_t high = (xc >> 32) * multiplier;
    const int64_t low = (int64_t)((uint64_t)xc & 0xFFFFFFFFu) * multiplier; /* |low| < 2^63 */
    if (t > 32) {
        return (high + ((int64_t)1 << (t - 33)) + (low >> 32)) >> (t - 32);
    }
    if (t == 32) {
        return high + ((low + ((int64_t)1 << 31)) >> 32);
    }
    return high * ((int64_t)1 << (32 - t)) + ((low + ((int64_t)1 << (t - 1))) >> t);
}

/** One rounding, ties away from zero: sign(x) * ((|x*M| + 2^(t-1)) >> t), t = 31 - shift (LiteRT's
 *  reference int8 FULLY_CONNECTED); multiplier >= 0, shift <= 30 (|x*M| <= 2^62, no overflow). */
static inline int64_t dmx_mbqm_away(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t t = 31 - shift;
    const int64_t p = (int64_t)x * multiplier;
    const int64_t mag = ((p < 0 ? -p : p) + ((int64_t)1 << (t - 1))) >> t;
    return p < 0 ? -mag : mag;
}

/** dmx_mbqm_away of an int64 accumulator: dmx_mbqm_single64 of |x|, negated back (INT64_MIN read as
 *  -INT64_MAX, as fixedpoint.py does). */
static inline int64_t dmx_mbqm_away64(int64_t x, int32_t multiplier, int32_t shift)
{
    const int64_t mag = dmx_mbqm_single64(x >= 0 ? x : (x == INT64_MIN ? INT64_MAX : -x), multiplier, shift);
    return x < 0 ? -mag : mag;
}

/** TFLite's 64-bit MultiplyByQuantizedMultiplier (16x8 conv, depthwise, TFLite Micro's FC): the
 *  multiplier reduced to 16 bits, one rounding by 15 - shift; exact for |x| < 2^47 and shift < 8,
 *  which the frontend checks. */
static inline int64_t dmx_mbqm64(int64_t x, int32_t multiplier, int32_t shift)
{
    const int64_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t t = 15 - shift;
    return (x * reduced + ((int64_t)1 << (t - 1))) >> t;
}

/** v saturated to [lo, hi]. */
static inline int32_t dmx_clamp64(int64_t v, int32_t lo, int32_t hi)
{
    return (int32_t)(v < lo ? lo : (v > hi ? hi : v));
}

/** clamp(v + offset, lo, hi), clamping first so that no int32 v can overflow the addition. */
static inline int32_t dmx_offset_clamp(int32_t v, int32_t offset, int32_t lo, int32_t hi)
{
    v = v < lo - offset ? lo - offset : v;
    v = v > hi - offset ? hi - offset : v;
    return v + offset;
}

/* ---- gemmlowp fixed point on raw int32 values (Q formats implied), for the integer softmax ---- */

/** gemmlowp SaturatingRoundingMultiplyByPOT, -31 <= exponent <= 31. */
static inline int32_t dmx_sat_mul_pot(int32_t x, int32_t exponent)
{
    if (exponent < 0) {
        return dmx_rdbpot(x, -exponent);
    }
    if (exponent == 0) {
        return x;
    }
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/** exp on [-1/4, 0) for a Q0.31 input. */
static inline int32_t dmx_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = dmx_wrap_add(a, 1 << 28);
    const int32_t x2 = dmx_srdhm(x, x);
    const int32_t x3 = dmx_srdhm(x2, x);
    const int32_t x4 = dmx_srdhm(x2, x2);
    const int32_t x4_over_4 = dmx_sat_mul_pot(x4, -2);
    const int32_t poly = dmx_sat_mul_pot(
        dmx_wrap_add(dmx_srdhm(dmx_wrap_add(x4_over_4, x3), one_third), x2), -1);
    return dmx_wrap_add(constant_term, dmx_srdhm(constant_term, dmx_wrap_add(x, poly)));
}

/** exp of a Q5.26 input <= 0, Q0.31 output (gemmlowp exp_on_negative_values, 5 integer bits). */
static inline int32_t dmx_exp_on_negative_values(int32_t a)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                           39332535, 720401, 242};
    const int32_t frac = 26;
    const int32_t one_quarter = 1 << (frac - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod = dmx_wrap_add(a & mask, -one_quarter);
    int32_t result = dmx_exp_quarter(dmx_sat_mul_pot(a_mod, 5));
    const int32_t remainder = (int32_t)((uint32_t)a_mod - (uint32_t)a);
    for (int32_t k = 0; k < 7; k++) {
        DMX_INT_UNROLL
        if (remainder & (1 << (frac - 2 + k))) {
            result = dmx_srdhm(result, multipliers[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/** 1 / (1 + x) for x in [0, 1), Q0.31 in and out, three Newton-Raphson steps. */
static inline int32_t dmx_one_over_one_plus_x(int32_t a)
{
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)(s >= 0 ? (s + 1) / 2 : -((-s + 1) / 2));
    int32_t x = dmx_wrap_add(1515870810, dmx_srdhm(half_den, -1010580540));
    const int32_t one_q2 = 1 << 29;
    for (int32_t i = 0; i < 3; i++) {
        const int32_t hx = dmx_srdhm(half_den, x);
        x = dmx_wrap_add(x, dmx_sat_mul_pot(dmx_srdhm(x, dmx_wrap_add(one_q2, -hx)), 2));
    }
    return dmx_sat_mul_pot(x, 1);
}

/** Leading zeros of a 32-bit value (32 for 0), as a fixed-trip loop that HLS can unroll. */
static inline int32_t dmx_clz32(uint32_t u)
{
    int32_t n = 0;
    for (int32_t b = 31; b >= 0; b--) {
        DMX_INT_UNROLL
        if ((u >> b) != 0u) {
            break;
        }
        n++;
    }
    return n;
}

#endif /* DMX_INT_H */
