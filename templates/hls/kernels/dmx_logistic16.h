/* LOGISTIC on int16: TFLite's reference_integer_ops::Logistic (dmxgen/ops/logistic16.py), the
 * arithmetic of templates/c/kernels/logistic16.c.j2: the code rescaled onto 1/(3 * 4096) units,
 * TFLite's 256-entry sigmoid table interpolated on 9 bits, the output on 1/32768. The table and the
 * rescale are dmx_lstm_int.h, shared with the C export (and the LSTM gates). */
#ifndef DMX_LOGISTIC16_H
#define DMX_LOGISTIC16_H

#include <stdint.h>

#include "dmx_fixedpoint.h"
#include "dmx_lstm_int.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void logistic16(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    for (int i = 0; i < CFG::size; i++) {
#pragma HLS PIPELINE II=1
        const int32_t v = dmx_lstm_scaled_input(in[i], CFG::input_multiplier, CFG::input_left_shift);
        int saturated;
        int32_t r = dmx_lstm_interpolate(v < 0 ? -v : v, 9, &saturated);
        if (saturated) {
            r = 0x7FFF << 10;
        }
        r = v >= 0 ? r + (1 << 9) : (1 << 25) - r + (1 << 9) - 1;
        out[i] = (res_T)dmx_lstm_wrap16(r >> 10);
    }
}

}  // namespace dmx

#endif
