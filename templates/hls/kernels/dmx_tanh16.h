/* TANH on int16: TFLite's reference_integer_ops::Tanh (dmxgen/ops/tanh16.py), as
 * templates/c/kernels/tanh16.c.j2: dmx_lstm_int.h's dmx_lstm_tflm_tanh16, shared with the C export. */
#ifndef DMX_TANH16_H
#define DMX_TANH16_H

#include <stdint.h>

#include "dmx_fixedpoint.h"
#include "dmx_lstm_int.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void tanh16(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    for (int i = 0; i < CFG::size; i++) {
#pragma HLS PIPELINE II=1
        out[i] = (res_T)dmx_lstm_tflm_tanh16(in[i], CFG::input_multiplier, CFG::input_left_shift);
    }
}

}  // namespace dmx

#endif
