/* FULLY_CONNECTED: TFLite's reference_integer_ops::FullyConnected.
 * Weights [out, in] behind CFG::matvec (any storage format of dmx_matvec.h); requantization
 * with one rounding (TFLite reference) or two (TFLite Micro), as the graph says. */
#ifndef DMX_FULLY_CONNECTED_H
#define DMX_FULLY_CONNECTED_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** FULLY_CONNECTED over CFG::batches rows of CFG::cols inputs; W behind CFG::matvec.
 *  data_T / res_T: the input and output activation types; bias_T: int32, or int64 for 16x8
 *  (int64 accumulators, acc_of). */
template <class data_T, class res_T, class CFG, class bias_T>
void fully_connected(const data_T in[CFG::batches * CFG::cols], res_T out[CFG::batches * CFG::rows],
                     const bias_T bias[CFG::rows], const int32_t multiplier[CFG::rows],
                     const int8_t shift[CFG::rows]) {
    for (int b = 0; b < CFG::batches; b++) {
        int16_t x[CFG::cols];
        typename acc_of<bias_T>::type acc[CFG::rows];
        for (int c = 0; c < CFG::cols; c++) {
#pragma HLS PIPELINE II=1
            x[c] = (int16_t)(in[b * CFG::cols + c] + CFG::input_offset);
        }
        for (int r = 0; r < CFG::rows; r++) {
            acc[r] = bias[r];
        }
        CFG::matvec(x, acc);
        for (int r = 0; r < CFG::rows; r++) {
#pragma HLS PIPELINE II=1
            out[b * CFG::rows + r] = requantize<CFG::rounding, res_T>(acc[r], multiplier[r], shift[r],
                                                                      CFG::output_offset, CFG::act_min,
                                                                      CFG::act_max);
        }
    }
}

}  // namespace dmx

#endif
