/* int8 SOFTMAX over the last axis (output scale 1/256, zero point -128), in the graph's algorithm:
 *  - softmax_float_table: what TFLite runs for int8 (a 256-entry float32 exp table, float32 sum and
 *    reciprocal, round half to even). Bit-exact only without FMA contraction (-ffp-contract=off).
 *  - softmax_gemmlowp: TFLite Micro's integer-only version (gemmlowp fixed point). */
#ifndef DMX_SOFTMAX_H
#define DMX_SOFTMAX_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** Round half to even for 0 <= p < 2^23 (what rint does in the default rounding mode), no libm. */
inline int32_t round_half_even(float p) {
    const int32_t i = (int32_t)p;
    const float frac = p - (float)i;
    return (frac > 0.5f || (frac == 0.5f && (i & 1))) ? i + 1 : i;
}

template <class CFG>
void softmax_float_table(const int8_t in[CFG::rows * CFG::depth], int8_t out[CFG::rows * CFG::depth],
                         const float table[256]) {
    for (int r = 0; r < CFG::rows; r++) {
        const int8_t *x = in + r * CFG::depth;
        int32_t max_v = -128;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            max_v = x[j] > max_v ? x[j] : max_v;
        }
        float sum = 0.0f;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE
            sum = sum + table[255 - (max_v - x[j])];
        }
        const float inv = 1.0f / (sum * CFG::output_scale());
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            const int32_t q = round_half_even(table[255 - (max_v - x[j])] * inv) - 128;
            out[r * CFG::depth + j] = clamp8(q, -128, 127);
        }
    }
}

/* gemmlowp fixed point on raw int32 values (Q formats implied), exactly as
 * dmxgen/graph/fixedpoint.py transcribes it. */

/** gemmlowp SaturatingRoundingMultiplyByPOT. */
inline int32_t sat_mul_pot(int32_t x, int exponent) {
    if (exponent < 0) {
        return (int32_t)rdbpot(x, -exponent);
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
    return wrap32((int64_t)x * ((int64_t)1 << exponent));
}

/** exp on [-1/4, 0) for a Q0.31 input. */
inline int32_t exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = wrap32((int64_t)a + (1 << 28));
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = sat_mul_pot(x4, -2);
    const int32_t poly =
        sat_mul_pot(wrap32((int64_t)srdhm(wrap32((int64_t)x4_over_4 + x3), one_third) + x2), -1);
    return wrap32((int64_t)constant_term + srdhm(constant_term, wrap32((int64_t)x + poly)));
}

/** gemmlowp exp_on_negative_values with 5 integer bits: Q5.26 input <= 0 -> Q0.31. */
inline int32_t exp_on_negative_values_q5(int32_t a) {
    const int frac = 26;
    const int32_t one_quarter = 1 << (frac - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod = wrap32((int64_t)(a & mask) - one_quarter);
    int32_t result = exp_quarter(sat_mul_pot(a_mod, 5));
    const int32_t remainder = wrap32((int64_t)a_mod - a);
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    for (int e = 0; e < 7; e++) {
#pragma HLS UNROLL
        if (remainder & (1 << (frac - 2 + e))) {
            result = srdhm(result, multipliers[e]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/** gemmlowp one_over_one_plus_x_for_x_in_0_1: three Newton-Raphson steps, Q0.31 in and out. */
inline int32_t one_over_one_plus_x(int32_t a) {
    const int64_t s = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)(s >= 0 ? (s + 1) / 2 : -((-s + 1) / 2));
    int32_t x = wrap32((int64_t)1515870810 + srdhm(half_den, -1010580540));
    const int32_t one_q2 = 1 << 29;
    for (int i = 0; i < 3; i++) {
        const int32_t hx = srdhm(half_den, x);
        x = wrap32((int64_t)x + sat_mul_pot(srdhm(x, wrap32((int64_t)one_q2 - hx)), 2));
    }
    return sat_mul_pot(x, 1);
}

/** Leading zeros of a 32-bit value (32 for 0), as a loop HLS can unroll. */
inline int count_leading_zeros(uint32_t u) {
    int n = 0;
    for (int b = 31; b >= 0; b--) {
#pragma HLS UNROLL
        if (u >> b) {
            break;
        }
        n++;
    }
    return n;
}

template <class CFG>
void softmax_gemmlowp(const int8_t in[CFG::rows * CFG::depth], int8_t out[CFG::rows * CFG::depth]) {
    for (int r = 0; r < CFG::rows; r++) {
        const int8_t *x = in + r * CFG::depth;
        int32_t max_v = -128;
        for (int j = 0; j < CFG::depth; j++) {
            max_v = x[j] > max_v ? x[j] : max_v;
        }
        int32_t exps[CFG::depth];
        uint32_t sum = 0;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            const int32_t diff = x[j] - max_v;
            exps[j] = 0;
            if (diff >= CFG::diff_min) {
                const int32_t rescaled = srdhm(diff * (1 << CFG::input_left_shift), CFG::input_multiplier);
                exps[j] = exp_on_negative_values_q5(rescaled);
                sum += (uint32_t)rdbpot(exps[j], 12);
            }
        }
        const int clz = count_leading_zeros(sum);
        const int32_t shifted = wrap32((int64_t)(((uint64_t)sum << clz) & 0xFFFFFFFFu) - ((int64_t)1 << 31));
        const int32_t scale = one_over_one_plus_x(shifted);
        const int exponent = 12 - clz + 31 - 8;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            const int32_t diff = x[j] - max_v;
            int64_t q = -128;
            if (diff >= CFG::diff_min) {
                q = rdbpot(srdhm(scale, exps[j]), exponent) - 128;
            }
            out[r * CFG::depth + j] = clamp8(q, -128, 127);
        }
    }
}

}  // namespace dmx

#endif
