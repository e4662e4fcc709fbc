/* PAD / PADV2 of an int8 tensor (shapes padded to 4-D) with a constant value. */
#ifndef DMX_PAD_H
#define DMX_PAD_H

#include <stdint.h>

namespace dmx {

template <class CFG>
void pad(const int8_t in[CFG::i0 * CFG::i1 * CFG::i2 * CFG::i3], int8_t out[CFG::o0 * CFG::o1 * CFG::o2 * CFG::o3]) {
    int o = 0;
    for (int a = 0; a < CFG::o0; a++) {
        for (int b = 0; b < CFG::o1; b++) {
            for (int c = 0; c < CFG::o2; c++) {
                for (int d = 0; d < CFG::o3; d++, o++) {
#pragma HLS PIPELINE II=1
                    const int ia = a - CFG::p0, ib = b - CFG::p1, ic = c - CFG::p2, id = d - CFG::p3;
                    const bool inside = ia >= 0 && ia < CFG::i0 && ib >= 0 && ib < CFG::i1 && ic >= 0 &&
                                        ic < CFG::i2 && id >= 0 && id < CFG::i3;
                    out[o] = inside ? in[((ia * CFG::i1 + ib) * CFG::i2 + ic) * CFG::i3 + id] : (int8_t)CFG::value;
                }
            }
        }
    }
}

}  // namespace dmx

#endif
