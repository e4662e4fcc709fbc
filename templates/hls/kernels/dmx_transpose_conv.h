/* TRANSPOSE_CONV: TFLite's reference_integer_ops::TransposeConv in the gather form: each output
 * pixel sums the input pixels and taps that TFLite scatters onto it (output y = input y * stride
 * - pad + ky), the same int32 sums without a scratch; then the per-channel requantization.
 * OHWI weights, bias, multipliers and shifts are ROMs (dmxgen/ops/transpose_conv.py).
 * 16x8 (int16 activations, an int64 bias): int64 sums and the 64-bit MultiplyByQuantizedMultiplier. */
#ifndef DMX_TRANSPOSE_CONV_H
#define DMX_TRANSPOSE_CONV_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG, class bias_T>
void transpose_conv(const data_T in[CFG::in_size], res_T out[CFG::out_size],
                    const int8_t weights[CFG::out_c * CFG::k_h * CFG::k_w * CFG::in_c],
                    const bias_T bias[CFG::out_c], const int32_t multiplier[CFG::out_c],
                    const int32_t shift[CFG::out_c]) {
    for (int b = 0; b < CFG::batches; b++) {
        for (int oy = 0; oy < CFG::out_h; oy++) {
            for (int ox = 0; ox < CFG::out_w; ox++) {
                const int base = ((b * CFG::out_h + oy) * CFG::out_w + ox) * CFG::out_c;
                for (int oc = 0; oc < CFG::out_c; oc++) {
                    typename acc_of<bias_T>::type acc = bias[oc];
                    for (int ky = 0; ky < CFG::k_h; ky++) {
                        const int ny = oy + CFG::pad_top - ky;  // input y * stride_h
                        if (ny < 0 || ny % CFG::stride_h != 0 || ny / CFG::stride_h >= CFG::in_h) continue;
                        for (int kx = 0; kx < CFG::k_w; kx++) {
                            const int nx = ox + CFG::pad_left - kx;
                            if (nx < 0 || nx % CFG::stride_w != 0 || nx / CFG::stride_w >= CFG::in_w) continue;
                            const int iy = ny / CFG::stride_h, ix = nx / CFG::stride_w;
                            const int at = ((b * CFG::in_h + iy) * CFG::in_w + ix) * CFG::in_c;
                            const int wat = ((oc * CFG::k_h + ky) * CFG::k_w + kx) * CFG::in_c;
                            for (int ic = 0; ic < CFG::in_c; ic++) {
#pragma HLS PIPELINE II=1
                                acc += ((int32_t)in[at + ic] + CFG::input_offset) * (int32_t)weights[wat + ic];
                            }
                        }
                    }
                    out[base + oc] = requantize<sizeof(bias_T) == 8 ? ROUND_REDUCED : ROUND_DOUBLE, res_T>(
                        acc, multiplier[oc], shift[oc], CFG::output_offset, CFG::act_min, CFG::act_max);
                }
            }
        }
    }
}

}  // namespace dmx

#endif
