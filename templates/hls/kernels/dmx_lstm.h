/* LSTM: TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM with int8 activations and an int16 cell state (8x8_16),
 * the arithmetic of dmxgen/ops/lstm.py and the C kernel lstm.c.j2, whose int16 pieces (sigmoid, tanh,
 * layer norm, the cell update) are dmx_lstm_int.h, shared with it. CFG: the sizes (steps, batch, n_in,
 * n_cell, n_out), layout (time_major), semantics (tflm), zero points, per gate in_mult0..3, in_shift0..3,
 * rec_mult0..3, rec_shift0..3 (and ln_mult, ln_shift, ln_guard with layer_norm), the hidden, cell and
 * projection constants. The ROMs: the weights stacked gate after gate (input, forget, cell, output).
 * Each call runs one whole sequence from the states h (int8, the output state) and c (int16, the cell
 * state) and leaves them there: the layer keeps them in static arrays across calls of the top, as TFLite
 * keeps its variable tensors across invoke()s, and resets them when the top's reset_state is set. */
#ifndef DMX_LSTM_H
#define DMX_LSTM_H

#include <stdint.h>

#include "dmx_fixedpoint.h"
#include "dmx_lstm_int.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void lstm(const data_T in[CFG::in_size], int8_t h[CFG::in1_size], int16_t c[CFG::in2_size],
          res_T out[CFG::out_size], const int8_t w_in[4 * CFG::n_cell * CFG::n_in],
          const int8_t w_rec[4 * CFG::n_cell * CFG::n_out], const int32_t bias[4 * CFG::n_cell],
          const int8_t w_proj[], const int32_t proj_bias[], const int16_t ln_w[]) {
    const int N = CFG::n_cell;
    const int32_t in_mult[4] = {CFG::in_mult0, CFG::in_mult1, CFG::in_mult2, CFG::in_mult3};
    const int32_t in_shift[4] = {CFG::in_shift0, CFG::in_shift1, CFG::in_shift2, CFG::in_shift3};
    const int32_t rec_mult[4] = {CFG::rec_mult0, CFG::rec_mult1, CFG::rec_mult2, CFG::rec_mult3};
    const int32_t rec_shift[4] = {CFG::rec_shift0, CFG::rec_shift1, CFG::rec_shift2, CFG::rec_shift3};
    const int32_t ln_mult[4] = {CFG::ln_mult0, CFG::ln_mult1, CFG::ln_mult2, CFG::ln_mult3};
    const int32_t ln_shift[4] = {CFG::ln_shift0, CFG::ln_shift1, CFG::ln_shift2, CFG::ln_shift3};
    const int32_t ln_guard[4] = {CFG::ln_guard0, CFG::ln_guard1, CFG::ln_guard2, CFG::ln_guard3};
    const dmx_lstm_update_t u = {CFG::tflm, CFG::cell_shift, CFG::cell_clip, CFG::forget_mult, CFG::forget_shift,
                                 CFG::update_mult, CFG::update_shift, CFG::hidden_mult, CFG::hidden_shift,
                                 CFG::tflm ? CFG::state_zp : CFG::hidden_zp};
    int16_t gates[4 * CFG::n_cell];
    int8_t hidden[CFG::n_cell];
    for (int t = 0; t < CFG::steps; t++) {
        for (int b = 0; b < CFG::batch; b++) {
            const int row = CFG::time_major ? t * CFG::batch + b : b * CFG::steps + t;
            const data_T *x = in + row * CFG::n_in;
            int8_t *hb = h + b * CFG::n_out;
            for (int k = 0; k < 4; k++) {
                for (int j = 0; j < N; j++) {
                    int64_t acc_in = CFG::layer_norm ? 0 : bias[k * N + j];  // with layer norm: added after it
                    for (int i = 0; i < CFG::n_in; i++) {
                        acc_in += ((int32_t)x[i] - CFG::input_zp) * (int32_t)w_in[(k * N + j) * CFG::n_in + i];
                    }
                    int64_t acc_rec = 0;
                    for (int i = 0; i < CFG::n_out; i++) {
                        acc_rec += ((int32_t)hb[i] - CFG::state_zp) * (int32_t)w_rec[(k * N + j) * CFG::n_out + i];
                    }
                    gates[k * N + j] = (int16_t)dmx_lstm_preactivation(CFG::tflm, acc_in, acc_rec, in_mult[k],
                                                                       in_shift[k], rec_mult[k], rec_shift[k]);
                }
                if (CFG::layer_norm) {
                    dmx_lstm_layer_norm(gates + k * N, N, ln_w + k * N, bias + k * N, ln_mult[k], ln_shift[k],
                                        ln_guard[k]);
                }
            }
            for (int j = 0; j < N; j++) {
                hidden[j] = (int8_t)dmx_lstm_update(&u, gates[j], gates[N + j], gates[2 * N + j], gates[3 * N + j],
                                                    c + b * N + j);
            }
            for (int r = 0; r < CFG::n_out; r++) {
                if (CFG::projected) {
                    int64_t acc = CFG::proj_has_bias ? proj_bias[r] : 0;
                    for (int j = 0; j < N; j++) {
                        acc += ((int32_t)hidden[j] - CFG::hidden_zp) * (int32_t)w_proj[r * N + j];
                    }
                    hb[r] = (int8_t)dmx_lstm_project(acc, CFG::proj_mult, CFG::proj_shift, CFG::state_zp,
                                                     CFG::proj_clip);
                } else {
                    hb[r] = hidden[r];
                }
                out[row * CFG::n_out + r] = (res_T)hb[r];
            }
        }
    }
}

}  // namespace dmx

#endif
