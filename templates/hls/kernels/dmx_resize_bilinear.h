/* RESIZE_BILINEAR: TFLite's ResizeBilinearInteger. CFG's ROMs hold, per output row and column, the
 * element offsets of the two input rows (columns) and the fraction in 1/1024
 * (dmxgen/ops/resize_bilinear.py); each output is the 20-bit weighted sum of four codes, rounded half
 * away from zero. |sum| < 2^31, so int32 holds it. */
#ifndef DMX_RESIZE_BILINEAR_H
#define DMX_RESIZE_BILINEAR_H

#include <stdint.h>

namespace dmx {

template <class data_T, class res_T, class CFG>
void resize_bilinear(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int32_t rows[3 * CFG::out_h],
                     const int32_t cols[3 * CFG::out_w]) {
    int at = 0;
    for (int b = 0; b < CFG::batches; b++) {
        for (int y = 0; y < CFG::out_h; y++) {
            const int top = b * CFG::in_image + rows[3 * y], bottom = b * CFG::in_image + rows[3 * y + 1];
            const int32_t fy = rows[3 * y + 2];
            for (int x = 0; x < CFG::out_w; x++) {
                const int left = cols[3 * x], right = cols[3 * x + 1];
                const int32_t fx = cols[3 * x + 2];
                for (int c = 0; c < CFG::channels; c++) {
#pragma HLS PIPELINE II=1
                    const int32_t s = (int32_t)in[top + left + c] * (1024 - fy) * (1024 - fx)
                                      + (int32_t)in[bottom + left + c] * fy * (1024 - fx)
                                      + (int32_t)in[top + right + c] * (1024 - fy) * fx
                                      + (int32_t)in[bottom + right + c] * fy * fx;
                    const int32_t q = ((s < 0 ? -s : s) + (1 << 19)) >> 20;
                    out[at++] = (res_T)(s < 0 ? -q : q);
                }
            }
        }
    }
}

}  // namespace dmx

#endif
