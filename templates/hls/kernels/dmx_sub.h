/* SUB with numpy broadcasting: TFLite's int8 reference kernel (dmxgen/ops/sub.py). */
#ifndef DMX_SUB_H
#define DMX_SUB_H

#include "dmx_broadcast.h"

namespace dmx {

/** Each input rescaled (and rounded) on its own with 20 bits of headroom, subtracted, rescaled to the
 *  output; right shifts only, where dmx_mbqm is MultiplyByQuantizedMultiplierSmallerThanOneExp. */
template <class res_T, class CFG>
struct sub_element {
    static res_T apply(int32_t a, int32_t b) {
        const int32_t s1 = dmx_mbqm((a + CFG::in1_offset) * (1 << CFG::left_shift), CFG::in1_mult, CFG::in1_shift);
        const int32_t s2 = dmx_mbqm((b + CFG::in2_offset) * (1 << CFG::left_shift), CFG::in2_mult, CFG::in2_shift);
        const int32_t raw = dmx_mbqm(s1 - s2, CFG::out_mult, CFG::out_shift);
        return clamp<res_T>((int64_t)raw + CFG::out_offset, CFG::act_min, CFG::act_max);
    }
};

template <class data_T, class res_T, class CFG>
void sub(const data_T a[CFG::in_size], const data_T b[CFG::in1_size], res_T out[CFG::out_size]) {
    broadcast_walk<data_T, res_T, CFG, sub_element<res_T, CFG> >(a, b, out);
}

}  // namespace dmx

#endif
