/* L2_NORMALIZATION over the last axis: TFLite's int8 reference kernel (dmxgen/ops/l2_norm.py). Each row is
 * read twice (its sum of squares, then the scaling), so the layer keeps its input. */
#ifndef DMX_L2_NORM_H
#define DMX_L2_NORM_H

#include "dmx_fixedpoint.h"

namespace dmx {

/** GetInvSqrtQuantizedMultiplierExp(acc), the shift returned as a left shift. */
inline void l2_norm_inv_sqrt(int32_t acc, int32_t &mult, int32_t &shift) {
    if (acc <= 1) {
        mult = INT32_MAX;
        shift = 0;
        return;
    }
    int32_t s = 11;
    for (int k = 0; k < 2; k++) {  // acc < 2^31: at most one step brings it below 2^29
        if (acc >= (1 << 29)) {
            acc /= 4;
            s++;
        }
    }
    const int32_t pairs = (dmx_clz32((uint32_t)acc) - 1) / 2 - 1;
    s -= pairs;
    acc = (int32_t)((uint32_t)acc << (2 * pairs));
    const int32_t half_input = dmx_sat_mul_pot(acc >> 1, -1);
    const int32_t half_three = (1 << 28) + (1 << 27);
    int32_t x = 1 << 28;
    for (int i = 0; i < 5; i++) {
#pragma HLS UNROLL
        const int32_t x3 = dmx_sat_mul_pot(dmx_srdhm(dmx_srdhm(x, x), x), 6);
        x = dmx_sat_mul_pot(dmx_wrap_add(dmx_srdhm(half_three, x), -dmx_srdhm(half_input, x3)), 3);
    }
    x = dmx_srdhm(x, 1518500250);
    if (s < 0) {
        x = (int32_t)((uint32_t)x << -s);
        s = 0;
    }
    mult = x;
    shift = -s;
}

template <class data_T, class res_T, class CFG>
void l2_norm(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    for (int r = 0; r < CFG::rows; r++) {
        int32_t acc = 0;
        for (int i = 0; i < CFG::depth; i++) {
#pragma HLS PIPELINE II=1
            const int32_t v = (int32_t)in[r * CFG::depth + i] + CFG::in_offset;
            acc += v * v;
        }
        int32_t mult, shift;
        l2_norm_inv_sqrt(acc, mult, shift);
        for (int i = 0; i < CFG::depth; i++) {
#pragma HLS PIPELINE II=1
            const int32_t v = (int32_t)in[r * CFG::depth + i] + CFG::in_offset;
            out[r * CFG::depth + i] = saturate<res_T>(dmx_mbqm(v, mult, shift + 7));
        }
    }
}

}  // namespace dmx

#endif
