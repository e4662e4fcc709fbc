/* PRELU / LEAKY_RELU: TFLite's int8 parametric ReLU, alpha repeating every CFG::period values of the
 * flat tensor (dmxgen/ops/prelu.py): x >= 0 through the identity multiplier, x < 0 times alpha
 * through the alpha multiplier. */
#ifndef DMX_PRELU_H
#define DMX_PRELU_H

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void prelu(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int8_t alpha[CFG::period]) {
    int i = 0;
    for (int o = 0; o < CFG::outer; o++) {
        for (int c = 0; c < CFG::period; c++, i++) {
#pragma HLS PIPELINE II=1
            const int32_t x = (int32_t)in[i] + CFG::input_offset;
            const int32_t y = x >= 0 ? dmx_mbqm(x, CFG::mult_identity, CFG::shift_identity)
                                     : dmx_mbqm(x * ((int32_t)alpha[c] + CFG::alpha_offset), CFG::mult_alpha,
                                                CFG::shift_alpha);
            out[i] = saturate<res_T>((int64_t)y + CFG::output_offset);
        }
    }
}

}  // namespace dmx

#endif
