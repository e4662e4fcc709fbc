/* AVERAGE_POOL_2D and MAX_POOL_2D over NHWC activations: TFLite's reference kernels.
 * Only taps inside the image count (the average divides by their number). */
#ifndef DMX_POOL_H
#define DMX_POOL_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** Each output folds the inside taps of its window with P::fold, then P::finish(acc, count of taps).
 *  data_T / res_T: the input and output activation types. */
template <class data_T, class res_T, class CFG, class P>
void pool2d(const data_T in[CFG::n * CFG::in_h * CFG::in_w * CFG::c],
            res_T out[CFG::n * CFG::out_h * CFG::out_w * CFG::c]) {
    for (int b = 0; b < CFG::n; b++) {
        for (int oy = 0; oy < CFG::out_h; oy++) {
            for (int ox = 0; ox < CFG::out_w; ox++) {
                for (int ch = 0; ch < CFG::c; ch++) {
                    int32_t acc = P::init();
                    int32_t count = 0;
                    for (int t = 0; t < CFG::k_h * CFG::k_w; t++) {
#pragma HLS PIPELINE II=1
                        const int iy = oy * CFG::stride_h - CFG::pad_top + t / CFG::k_w;
                        const int ix = ox * CFG::stride_w - CFG::pad_left + t % CFG::k_w;
                        if (iy >= 0 && iy < CFG::in_h && ix >= 0 && ix < CFG::in_w) {
                            acc = P::fold(acc, in[((b * CFG::in_h + iy) * CFG::in_w + ix) * CFG::c + ch]);
                            count++;
                        }
                    }
                    out[((b * CFG::out_h + oy) * CFG::out_w + ox) * CFG::c + ch] =
                        clamp<res_T>(P::finish(acc, count), CFG::act_min, CFG::act_max);
                }
            }
        }
    }
}

/** Window sum divided by the count of inside taps, rounded half away from zero. */
struct average {
    static int32_t init() { return 0; }
    static int32_t fold(int32_t acc, int32_t x) { return acc + x; }
    static int32_t finish(int32_t sum, int32_t count) {
        const int32_t half = count / 2;
        return sum > 0 ? (sum + half) / count : -((-sum + half) / count);
    }
};

/** Largest inside tap. */
struct maximum {
    static int32_t init() { return -32768; }
    static int32_t fold(int32_t acc, int32_t x) { return x > acc ? x : acc; }
    static int32_t finish(int32_t best, int32_t) { return best; }
};

template <class data_T, class res_T, class CFG>
void avg_pool2d(const data_T in[CFG::n * CFG::in_h * CFG::in_w * CFG::c],
                res_T out[CFG::n * CFG::out_h * CFG::out_w * CFG::c]) {
    pool2d<data_T, res_T, CFG, average>(in, out);
}

template <class data_T, class res_T, class CFG>
void max_pool2d(const data_T in[CFG::n * CFG::in_h * CFG::in_w * CFG::c],
                res_T out[CFG::n * CFG::out_h * CFG::out_w * CFG::c]) {
    pool2d<data_T, res_T, CFG, maximum>(in, out);
}

}  // namespace dmx

#endif
