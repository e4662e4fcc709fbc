/* LayerNorm over the last dim, integer only: the arithmetic of dmxgen/ops/layer_norm.py and the C
 * kernel layer_norm.c.j2 (docs/compression.md "LayerNorm arithmetic"); the inverse square root
 * is dmx_isqrt.h's dmx_inv_sqrt62. CFG: rows, cols, eps_hi and eps_lo (eps_term = eps_hi 2^31 + eps_lo),
 * out_shift, output_offset, act_min, act_max; the ROMs gamma (int16) and beta (int32), one per feature. */
#ifndef DMX_LAYER_NORM_H
#define DMX_LAYER_NORM_H

#include <stdint.h>

#include "dmx_fixedpoint.h"
#include "dmx_isqrt.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void layer_norm(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int16_t gamma[CFG::cols],
                const int32_t beta[CFG::cols]) {
    const int64_t cols = CFG::cols;
    const int64_t eps_term = (int64_t)CFG::eps_hi * ((int64_t)1 << 31) + CFG::eps_lo;
    for (int row = 0; row < CFG::rows; row++) {
        int64_t s = 0, q = 0;
        for (int i = 0; i < CFG::cols; i++) {
#pragma HLS PIPELINE II=1
            const int64_t v = in[row * CFG::cols + i];
            s += v;
            q += v * v;
        }
        int32_t scale_exp;
        const int64_t inv = dmx_inv_sqrt62((cols * q - s * s) * 65536 + eps_term, &scale_exp);
        const int32_t norm_shift = 38 - scale_exp;  // 62 - 8 - 16 - p: the normalized value in Q16
        for (int i = 0; i < CFG::cols; i++) {
#pragma HLS PIPELINE II=1
            const int64_t norm = dmx_rdbpot64((cols * (int64_t)in[row * CFG::cols + i] - s) * inv, norm_shift);
            const int64_t acc = norm * gamma[i] + beta[i];
            out[row * CFG::cols + i] = (res_T)dmx_clamp64(dmx_rdbpot64(acc, CFG::out_shift) + CFG::output_offset,
                                                          CFG::act_min, CFG::act_max);
        }
    }
}

}  // namespace dmx

#endif
