/* lut: an int8 elementwise lookup table, out = table[in + 128] (TFLite's int8 activations,
 * float islands folded by dmxgen.passes; dmxgen/ops/lut.py). One element per cycle (II=1):
 * one read of the 256-entry ROM. */
#ifndef DMX_LUT_H
#define DMX_LUT_H

#include <stdint.h>

namespace dmx {

template <class data_T, class res_T, class CFG>
void lut(const data_T in[CFG::in_size], res_T out[CFG::out_size], const int8_t table[256]) {
    for (int i = 0; i < CFG::size; i++) {
#pragma HLS PIPELINE II=1
        out[i] = (res_T)table[(int)in[i] + 128];
    }
}

}  // namespace dmx

#endif
