/* LOG_SOFTMAX over the last axis: TFLite's int8 reference kernel in gemmlowp fixed point
 * (dmxgen/ops/log_softmax.py); the exp and 1/(1+x) are dmx_int.h's, shared with the C export. */
#ifndef DMX_LOG_SOFTMAX_H
#define DMX_LOG_SOFTMAX_H

#include "dmx_fixedpoint.h"

namespace dmx {

/** log_x_for_x_greater_than_or_equal_to_1<5> of a Q12.19 z >= 1, in Q5.26. */
inline int32_t log_softmax_log(int32_t z) {
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769, alpha_f = 638450708;
    const int32_t quarter = 1 << 23;
    const int32_t clz_a = dmx_clz32((uint32_t)z);
    const int32_t r_a = dmx_sat_mul_pot(dmx_srdhm(dmx_sat_mul_pot(z, clz_a - 1), sqrt_half), 1);
    const int32_t z_a_adj = dmx_clamp64((int64_t)dmx_sat_mul_pot(12 - clz_a, 25) + quarter, INT32_MIN, INT32_MAX);
    const int32_t z_b_headroom = dmx_clz32((uint32_t)dmx_srdhm(z, sqrt_half)) - 1;
    const int32_t r_b = dmx_sat_mul_pot(z, z_b_headroom);
    const int32_t z_b_adj =
        dmx_clamp64((int64_t)dmx_sat_mul_pot(12 - z_b_headroom, 25) - quarter, INT32_MIN, INT32_MAX);
    const int32_t r = r_a < r_b ? r_a : r_b;
    const int32_t z_adj = z_a_adj > z_b_adj ? z_a_adj : z_b_adj;
    const int64_t s = (int64_t)r + sqrt_sqrt_half;
    const int32_t p = (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
    const int32_t q0 = dmx_wrap_add(r, -sqrt_sqrt_half);
    const int32_t q = dmx_wrap_add(q0, q0);
    const int32_t common_sq = dmx_srdhm(q, q);
    const int32_t num = dmx_wrap_add(dmx_srdhm(q, r), dmx_srdhm(dmx_srdhm(q, common_sq), alpha_n));
    const int32_t denom_minus_one = dmx_wrap_add(
        dmx_srdhm(p, dmx_wrap_add(dmx_wrap_add(alpha_i, q), dmx_srdhm(alpha_d, common_sq))), dmx_srdhm(alpha_f, q));
    const int32_t recip = dmx_one_over_one_plus_x(denom_minus_one);
    return dmx_sat_mul_pot(dmx_wrap_add(dmx_srdhm(z_adj, log_2), dmx_srdhm(dmx_rdbpot(num, 6), recip)), 1);
}

template <class data_T, class res_T, class CFG>
void log_softmax(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    for (int r = 0; r < CFG::rows; r++) {
        const int base = r * CFG::depth;
        int32_t mx = -128;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            mx = (int32_t)in[base + j] > mx ? (int32_t)in[base + j] : mx;
        }
        int32_t sum = 0;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            const int32_t diff = (int32_t)in[base + j] - mx;
            if (diff >= CFG::diff_min) {
                const int32_t q5 = dmx_mbqm(diff, CFG::input_multiplier, CFG::input_left_shift);
                sum = dmx_wrap_add(sum, dmx_rdbpot(dmx_exp_on_negative_values(q5), 12));
            }
        }
        const int32_t lse = log_softmax_log(sum);
        const int32_t rev = dmx_mbqm(dmx_wrap_add(lse, INT32_MIN), CFG::reverse_multiplier, -CFG::reverse_right_shift);
        const int32_t adjusted = CFG::diff_min - 1 > rev ? CFG::diff_min - 1 : rev;
        for (int j = 0; j < CFG::depth; j++) {
#pragma HLS PIPELINE II=1
            const int32_t diff = (int32_t)in[base + j] - mx;
            int32_t y = -128;
            if (diff > adjusted) {
                const int32_t q5 = dmx_mbqm(diff, CFG::input_multiplier, CFG::input_left_shift);
                y = dmx_clamp64((int64_t)dmx_rdbpot(dmx_wrap_add(q5, -lse), 22) + 127, -128, 127);
            }
            out[base + j] = (res_T)y;
        }
    }
}

}  // namespace dmx

#endif
