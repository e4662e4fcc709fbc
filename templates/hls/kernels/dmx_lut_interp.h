/* lut_interp: per-channel int8 tables of G points, linearly interpolated (LERP-PSA activations).
 * One element per cycle: two table reads and one multiply (II=1); the table is a ROM
 * of CFG::channels x CFG::points codes, channel-major (dmxgen/ops/lut_interp.py). */
#ifndef DMX_LUT_INTERP_H
#define DMX_LUT_INTERP_H

#include <stdint.h>

namespace dmx {

template <class data_T, class res_T, class CFG>
void lut_interp(const data_T in[CFG::in_size], res_T out[CFG::out_size],
                const int8_t table[CFG::channels * CFG::points]) {
    for (int r = 0; r < CFG::rows; r++) {
        for (int c = 0; c < CFG::channels; c++) {
#pragma HLS PIPELINE II=1
            const int i = r * CFG::channels + c;
            const int idx = (int)in[i] + 128;
            int msb = idx >> CFG::bits;
            if (msb > CFG::points - 2) {
                msb = CFG::points - 2;
            }
            const int frac = idx & ((1 << CFG::bits) - 1);
            const int y0 = table[c * CFG::points + msb], y1 = table[c * CFG::points + msb + 1];
            out[i] = (res_T)(y0 + (((y1 - y0) * frac + (1 << (CFG::bits - 1))) >> CFG::bits));
        }
    }
}

}  // namespace dmx

#endif
