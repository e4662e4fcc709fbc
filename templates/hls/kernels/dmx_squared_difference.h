/* SQUARED_DIFFERENCE with numpy broadcasting: TFLite's int8 kernel (dmxgen/ops/squared_difference.py). */
#ifndef DMX_SQUARED_DIFFERENCE_H
#define DMX_SQUARED_DIFFERENCE_H

#include "dmx_broadcast.h"

namespace dmx {

/** Each input widened by 2^left_shift and rescaled on its own, the difference squared in int32
 *  (it fits, and so does its output left shift: the spec checks both), requantized, saturated. */
template <class res_T, class CFG>
struct squared_difference_element {
    static res_T apply(int32_t a, int32_t b) {
        const int32_t s1 = dmx_mbqm((a + CFG::in1_offset) * (1 << CFG::left_shift), CFG::in1_mult, CFG::in1_shift);
        const int32_t s2 = dmx_mbqm((b + CFG::in2_offset) * (1 << CFG::left_shift), CFG::in2_mult, CFG::in2_shift);
        const int32_t d = s1 - s2;
        return saturate<res_T>((int64_t)dmx_mbqm(d * d, CFG::out_mult, CFG::out_shift) + CFG::out_offset);
    }
};

template <class data_T, class res_T, class CFG>
void squared_difference(const data_T a[CFG::in_size], const data_T b[CFG::in1_size], res_T out[CFG::out_size]) {
    broadcast_walk<data_T, res_T, CFG, squared_difference_element<res_T, CFG> >(a, b, out);
}

}  // namespace dmx

#endif
