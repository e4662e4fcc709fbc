/* AVERAGE_POOL_2D with divisor "window" (PyTorch's count_include_pad=True): the sum of the taps
 * inside the image divided by the window clipped to the padded image, rows -pad_top..win_h-1 and
 * columns -pad_left..win_w-1 (a ceil_mode overhang beyond them is not counted). */
#ifndef DMX_POOL_WINDOW_H
#define DMX_POOL_WINDOW_H

#include "dmx_pool.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void avg_pool2d_window(const data_T in[CFG::n * CFG::in_h * CFG::in_w * CFG::c],
                       res_T out[CFG::n * CFG::out_h * CFG::out_w * CFG::c]) {
    for (int b = 0; b < CFG::n; b++) {
        for (int oy = 0; oy < CFG::out_h; oy++) {
            const int y0 = oy * CFG::stride_h - CFG::pad_top;
            const int rows = (y0 + CFG::k_h < CFG::win_h ? y0 + CFG::k_h : CFG::win_h) - y0;
            for (int ox = 0; ox < CFG::out_w; ox++) {
                const int x0 = ox * CFG::stride_w - CFG::pad_left;
                const int cols = (x0 + CFG::k_w < CFG::win_w ? x0 + CFG::k_w : CFG::win_w) - x0;
                for (int ch = 0; ch < CFG::c; ch++) {
                    int32_t sum = 0;
                    for (int t = 0; t < CFG::k_h * CFG::k_w; t++) {
#pragma HLS PIPELINE II=1
                        const int iy = y0 + t / CFG::k_w, ix = x0 + t % CFG::k_w;
                        if (iy >= 0 && iy < CFG::in_h && ix >= 0 && ix < CFG::in_w) {
                            sum += in[((b * CFG::in_h + iy) * CFG::in_w + ix) * CFG::c + ch];
                        }
                    }
                    out[((b * CFG::out_h + oy) * CFG::out_w + ox) * CFG::c + ch] =
                        clamp<res_T>(average::finish(sum, rows * cols), CFG::act_min, CFG::act_max);
                }
            }
        }
    }
}

}  // namespace dmx

#endif
