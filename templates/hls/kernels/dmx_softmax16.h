/* SOFTMAX on int16 over the last axis: TFLite's reference_ops::SoftmaxInt16 (dmxgen/ops/softmax16.py),
 * the arithmetic of templates/c/kernels/softmax16.c.j2: x - max rescaled onto 10 / 65535 units, exp
 * and 1 / (1 + x) read from the 513-entry ROMs exp_lut and recip_lut (the Prepare's LUTPopulate),
 * interpolated on the low 7 bits, each exp times the reciprocal of the row's sum onto 1/32768. */
#ifndef DMX_SOFTMAX16_H
#define DMX_SOFTMAX16_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** LUTLookup: the top 9 bits of the int16 v index the table, the low 7 interpolate to the next entry. */
inline int32_t softmax16_lookup(int32_t v, const int16_t lut[513]) {
    const int32_t index = (v + 32768) >> 7;  // 256 + floor(v / 128)
    const int32_t base = lut[index];
    return base + (((lut[index + 1] - base) * (v & 0x7F) + 64) >> 7);
}

template <class data_T, class res_T, class CFG>
void softmax16(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int16_t exp_lut[513],
               const int16_t recip_lut[513]) {
    for (int r = 0; r < CFG::rows; r++) {
        const int base = r * CFG::depth;
        int32_t exps[CFG::depth];
        int32_t top = -32768;
        for (int c = 0; c < CFG::depth; c++) {
#pragma HLS PIPELINE II=1
            top = in[base + c] > top ? (int32_t)in[base + c] : top;
        }
        int32_t sum = 0;  // at most 65536 exps of at most 32767 (softmax16.py MAX_DEPTH)
        for (int c = 0; c < CFG::depth; c++) {
#pragma HLS PIPELINE II=1
            // diff <= 0, unless (in - top) << shift wrapped (a shift above 15), as it does in TFLite
            const int32_t diff = dmx_mbqm(in[base + c] - top, CFG::input_multiplier, CFG::input_shift);
            exps[c] = softmax16_lookup(saturate<int16_t>((int64_t)diff + 32767), exp_lut);
            sum += exps[c];
        }
        const int32_t headroom = dmx_clz32((uint32_t)sum);  // sum >= exp(0): 1 <= headroom <= 17
        const int32_t shifted = (int32_t)((((int64_t)sum << (headroom - 1)) + (1 << 13)) >> 14);
        const int32_t recip = softmax16_lookup(saturate<int16_t>((int64_t)shifted - ((1 << 15) + (1 << 16))), recip_lut);
        const int32_t right = 31 - headroom;
        for (int c = 0; c < CFG::depth; c++) {
#pragma HLS PIPELINE II=1
            const int64_t y = ((int64_t)exps[c] * recip + ((int64_t)1 << (right - 1))) >> right;
            out[base + c] = clamp<res_T>(y, 0, 32767);
        }
    }
}

}  // namespace dmx

#endif
