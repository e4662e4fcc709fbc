/* RESIZE_NEAREST_NEIGHBOR: TFLite's reference kernel as a gathered copy; CFG's ROMs hold the element
 * offset of each output row's input row and each output column's input column
 * (dmxgen/ops/resize_nearest.py). */
#ifndef DMX_RESIZE_NEAREST_H
#define DMX_RESIZE_NEAREST_H

#include <stdint.h>

namespace dmx {

template <class data_T, class res_T, class CFG>
void resize_nearest(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int32_t rows[CFG::out_h],
                    const int32_t cols[CFG::out_w]) {
    int at = 0;
    for (int b = 0; b < CFG::batches; b++) {
        for (int y = 0; y < CFG::out_h; y++) {
            for (int x = 0; x < CFG::out_w; x++) {
                const int src = b * CFG::in_image + rows[y] + cols[x];
                for (int c = 0; c < CFG::channels; c++) {
#pragma HLS PIPELINE II=1
                    out[at++] = in[src + c];  // moves codes: data_T and res_T are one type
                }
            }
        }
    }
}

}  // namespace dmx

#endif
