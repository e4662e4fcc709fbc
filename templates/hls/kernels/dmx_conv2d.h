/* CONV_2D: TFLite's reference_integer_ops::ConvPerChannel.
 * NHWC activations, OHWI weights behind CFG::matvec (any storage format of dmx_matvec.h).
 * Taps outside the image contribute nothing (TFLite skips them). */
#ifndef DMX_CONV2D_H
#define DMX_CONV2D_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** One output pixel at a time: gather its patch (offset input, zero outside the image) in the
 *  weights' column order (ky, kx, ci), multiply by W with CFG::matvec, requantize per channel.
 *  data_T / res_T: the input and output activation types; bias_T: int32, or int64 for 16x8 (int16
 *  activations, zero point 0), whose accumulators are int64 too (acc_of). */
template <class data_T, class res_T, class CFG, class bias_T>
void conv2d(const data_T in[CFG::n * CFG::in_h * CFG::in_w * CFG::in_c],
            res_T out[CFG::n * CFG::out_h * CFG::out_w * CFG::out_c], const bias_T bias[CFG::out_c],
            const int32_t multiplier[CFG::out_c], const int8_t shift[CFG::out_c]) {
    for (int b = 0; b < CFG::n; b++) {
        for (int oy = 0; oy < CFG::out_h; oy++) {
            for (int ox = 0; ox < CFG::out_w; ox++) {
                int16_t patch[CFG::k_h * CFG::k_w * CFG::in_c];
                typename acc_of<bias_T>::type acc[CFG::out_c];
                for (int ky = 0; ky < CFG::k_h; ky++) {
                    for (int kx = 0; kx < CFG::k_w; kx++) {
                        const int iy = oy * CFG::stride_h - CFG::pad_top + ky * CFG::dil_h;
                        const int ix = ox * CFG::stride_w - CFG::pad_left + kx * CFG::dil_w;
                        const bool inside = iy >= 0 && iy < CFG::in_h && ix >= 0 && ix < CFG::in_w;
                        for (int ci = 0; ci < CFG::in_c; ci++) {
#pragma HLS PIPELINE II=1
                            const int at = ((b * CFG::in_h + iy) * CFG::in_w + ix) * CFG::in_c + ci;
                            patch[(ky * CFG::k_w + kx) * CFG::in_c + ci] =
                                inside ? (int16_t)(in[at] + CFG::input_offset) : (int16_t)0;
                        }
                    }
                }
                for (int co = 0; co < CFG::out_c; co++) {
                    acc[co] = bias[co];
                }
                CFG::matvec(patch, acc);
                const int base = ((b * CFG::out_h + oy) * CFG::out_w + ox) * CFG::out_c;
                for (int co = 0; co < CFG::out_c; co++) {
#pragma HLS PIPELINE II=1
                    out[base + co] = requantize<CFG::rounding, res_T>(acc[co], multiplier[co], shift[co],
                                                                      CFG::output_offset, CFG::act_min,
                                                                      CFG::act_max);
                }
            }
        }
    }
}

}  // namespace dmx

#endif
