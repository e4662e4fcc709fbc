/* DEPTHWISE_CONV_2D: TFLite's reference_integer_ops::DepthwiseConvPerChannel.
 * NHWC activations, dense weights [kh, kw, C*mult]; output channel co = ci * mult + m reads
 * input channel ci only. Taps outside the image contribute nothing (TFLite skips them). */
#ifndef DMX_DEPTHWISE_CONV2D_H
#define DMX_DEPTHWISE_CONV2D_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** The kh*kw taps of one output are the reduction loop; CFG::unroll of them run in parallel.
 *  data_T / res_T: the input and output activation types; bias_T: int32, or int64 for 16x8
 *  (int64 accumulators, acc_of); CFG::rounding: the layer's requantization. */
template <class data_T, class res_T, class CFG, class bias_T>
void depthwise_conv2d(const data_T in[CFG::n * CFG::in_h * CFG::in_w * CFG::in_c],
                      res_T out[CFG::n * CFG::out_h * CFG::out_w * CFG::out_c],
                      const int8_t w[CFG::k_h * CFG::k_w * CFG::out_c], const bias_T bias[CFG::out_c],
                      const int32_t multiplier[CFG::out_c], const int8_t shift[CFG::out_c]) {
    for (int b = 0; b < CFG::n; b++) {
        for (int oy = 0; oy < CFG::out_h; oy++) {
            for (int ox = 0; ox < CFG::out_w; ox++) {
                for (int co = 0; co < CFG::out_c; co++) {
                    const int ci = co / CFG::depth_multiplier;
                    typename acc_of<bias_T>::type acc = bias[co];
                    for (int t = 0; t < CFG::k_h * CFG::k_w; t++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=CFG::unroll
                        const int iy = oy * CFG::stride_h - CFG::pad_top + (t / CFG::k_w) * CFG::dil_h;
                        const int ix = ox * CFG::stride_w - CFG::pad_left + (t % CFG::k_w) * CFG::dil_w;
                        if (iy >= 0 && iy < CFG::in_h && ix >= 0 && ix < CFG::in_w) {
                            const int32_t xv = in[((b * CFG::in_h + iy) * CFG::in_w + ix) * CFG::in_c + ci];
                            acc += (xv + CFG::input_offset) * (int32_t)w[t * CFG::out_c + co];
                        }
                    }
                    out[((b * CFG::out_h + oy) * CFG::out_w + ox) * CFG::out_c + co] =
                        requantize<CFG::rounding, res_T>(acc, multiplier[co], shift[co], CFG::output_offset,
                                                        CFG::act_min, CFG::act_max);
                }
            }
        }
    }
}

}  // namespace dmx

#endif
