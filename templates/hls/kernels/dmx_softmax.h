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

/* data_T / res_T are the activation types, as in every kernel; the algorithms themselves are int8's
 * (a 256-entry table, the output zero point -128), so both are int8_t today. */
template <class data_T, class res_T, class CFG>
void softmax_float_table(const data_T in[CFG::rows * CFG::depth], res_T out[CFG::rows * CFG::depth],
                         const float table[256]) {
    for (int r = 0; r < CFG::rows; r++) {
        const data_T *x = in + r * CFG::depth;
        int32_t max_v = std::numeric_limits<data_T>::min();
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
            out[r * CFG::depth + j] = saturate<res_T>(q);
        }
    }
}

/* The gemmlowp fixed point (exp, 1/(1+x), clz) is dmx_int.h's, as in the C export. */

template <class data_T, class res_T, class CFG>
void softmax_gemmlowp(const data_T in[CFG::rows * CFG::depth], res_T out[CFG::rows * CFG::depth]) {
    for (int r = 0; r < CFG::rows; r++) {
        const data_T *x = in + r * CFG::depth;
        int32_t max_v = std::numeric_limits<data_T>::min();
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
                const int32_t rescaled = dmx_srdhm(dmx_wrap32((int64_t)diff * ((int64_t)1 << CFG::input_left_shift)), CFG::input_multiplier);
                exps[j] = dmx_exp_on_negative_values(rescaled);
                sum += (uint32_t)dmx_rdbpot(exps[j], 12);
            }
        }
        const int clz = dmx_clz32(sum);
        const int32_t shifted = dmx_wrap32((int64_t)(((uint64_t)sum << clz) & 0xFFFFFFFFu) - ((int64_t)1 << 31));
        const int32_t scale = dmx_one_over_one_plus_x(shifted);
        const int exponent = 12 - clz + 31 - 8;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            const int32_t diff = x[j] - max_v;
            int64_t q = -128;
            if (diff >= CFG::diff_min) {
                q = dmx_rdbpot64(dmx_srdhm(scale, exps[j]), exponent) - 128;
            }
            out[r * CFG::depth + j] = saturate<res_T>(q);
        }
    }
}

}  // namespace dmx

#endif
