/* GRU: dmxgen's own integer GRU (int8 input and output, an int16 Q0.15 state; gates reset, update, new),
 * the arithmetic of dmxgen/ops/gru.py and the C kernel gru.c.j2, whose int16 pieces (sigmoid, tanh, the
 * gate pre-activation) are dmx_lstm_int.h, shared with them. CFG: the sizes (steps, batch, n_in, n_hidden),
 * the zero points, per gate in_mult0..2, in_shift0..2, rec_mult0..2, rec_shift0..2, and out_mult, out_shift
 * (the Q0.15 state -> the int8 output grid). The ROMs: the input and recurrent weights stacked gate after
 * gate, the input-side biases, the new gate's recurrent bias. Input [batch, time, in], output
 * [batch, time, n_hidden]. Each call runs one whole sequence from the state h and leaves it there: the
 * layer keeps it in a static array across calls of the top, reset when the top's reset_state is set. */
#ifndef DMX_GRU_H
#define DMX_GRU_H

#include <stdint.h>

#include "dmx_fixedpoint.h"
#include "dmx_lstm_int.h"

namespace dmx {

/** The Q0.15 state on the output grid: the step's output and the next step's recurrent input. */
template <class CFG>
int8_t gru_output(int32_t h16) {
    return (int8_t)dmx_offset_clamp(dmx_mbqm(h16, CFG::out_mult, CFG::out_shift), CFG::state_zp, -128, 127);
}

template <class data_T, class res_T, class CFG>
void gru(const data_T in[CFG::in_size], int16_t h[CFG::in1_size], res_T out[CFG::out_size],
         const int8_t w_in[3 * CFG::n_hidden * CFG::n_in], const int8_t w_rec[3 * CFG::n_hidden * CFG::n_hidden],
         const int32_t bias[3 * CFG::n_hidden], const int32_t rec_bias[CFG::n_hidden]) {
    const int N = CFG::n_hidden;
    const int32_t in_mult[3] = {CFG::in_mult0, CFG::in_mult1, CFG::in_mult2};
    const int32_t in_shift[3] = {CFG::in_shift0, CFG::in_shift1, CFG::in_shift2};
    const int32_t rec_mult[3] = {CFG::rec_mult0, CFG::rec_mult1, CFG::rec_mult2};
    const int32_t rec_shift[3] = {CFG::rec_shift0, CFG::rec_shift1, CFG::rec_shift2};
    int8_t h8[CFG::n_hidden];  // the step's old state on the output grid: every gate reads it
    for (int t = 0; t < CFG::steps; t++) {
        for (int b = 0; b < CFG::batch; b++) {
            int16_t *hb = h + b * N;
            const int row = b * CFG::steps + t;
            const data_T *x = in + row * CFG::n_in;
            for (int j = 0; j < N; j++) {
                h8[j] = gru_output<CFG>(hb[j]);
            }
            for (int j = 0; j < N; j++) {
                int64_t acc_in[3], acc_rec[3];
                for (int k = 0; k < 3; k++) {
                    acc_in[k] = bias[k * N + j];
                    for (int i = 0; i < CFG::n_in; i++) {
                        acc_in[k] += ((int32_t)x[i] - CFG::input_zp) * (int32_t)w_in[(k * N + j) * CFG::n_in + i];
                    }
                    acc_rec[k] = k == 2 ? rec_bias[j] : 0;  // the new gate's recurrent bias: inside the reset product
                    for (int i = 0; i < N; i++) {
                        acc_rec[k] += ((int32_t)h8[i] - CFG::state_zp) * (int32_t)w_rec[(k * N + j) * N + i];
                    }
                }
                const int32_t r = dmx_lstm_logistic16(
                    dmx_lstm_preactivation(0, acc_in[0], acc_rec[0], in_mult[0], in_shift[0], rec_mult[0], rec_shift[0]),
                    3);
                const int32_t z = dmx_lstm_logistic16(
                    dmx_lstm_preactivation(0, acc_in[1], acc_rec[1], in_mult[1], in_shift[1], rec_mult[1], rec_shift[1]),
                    3);
                const int32_t pre = dmx_lstm_clamp16(dmx_mbqm(dmx_wrap32(acc_in[2]), in_mult[2], in_shift[2]));
                const int32_t rec = dmx_lstm_clamp16(dmx_mbqm(dmx_wrap32(acc_rec[2]), rec_mult[2], rec_shift[2]));
                const int32_t gated = dmx_lstm_clamp16(dmx_rdbpot(r * rec, 15));  // Q0.15 x Q3.12 -> Q3.12
                const int32_t cand = dmx_lstm_tanh16(dmx_lstm_clamp16((int64_t)pre + gated), 3);
                // |z h + (1 - z) n| <= 2^30: one rounding, no overflow
                const int32_t mixed = z * (int32_t)hb[j] + (32768 - z) * cand;
                hb[j] = (int16_t)dmx_lstm_clamp16(dmx_rdbpot(mixed, 15));
            }
            for (int j = 0; j < N; j++) {
                out[row * N + j] = (res_T)gru_output<CFG>(hb[j]);
            }
        }
    }
}

}  // namespace dmx

#endif
