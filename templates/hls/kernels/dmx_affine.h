/* affine: per-channel integer scale and shift over the last dim, requantized per channel as a conv
 * is (dmxgen/ops/affine.py): acc = (x + input_offset) * weight[c] + bias[c]. */
#ifndef DMX_AFFINE_H
#define DMX_AFFINE_H

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void affine(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int16_t weight[CFG::channels],
            const int32_t bias[CFG::channels], const int32_t mult[CFG::channels], const int32_t shift[CFG::channels]) {
    int i = 0;
    for (int o = 0; o < CFG::outer; o++) {
        for (int c = 0; c < CFG::channels; c++, i++) {
#pragma HLS PIPELINE II=1
            const int32_t acc = ((int32_t)in[i] + CFG::input_offset) * (int32_t)weight[c] + bias[c];
            out[i] = requantize<ROUND_DOUBLE, res_T>(acc, mult[c], shift[c], CFG::output_offset, CFG::act_min,
                                                     CFG::act_max);
        }
    }
}

}  // namespace dmx

#endif
