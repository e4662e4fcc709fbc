/* ADD and MUL with numpy broadcasting: TFLite's int8 reference kernels.
 * Shapes are padded to 4-D; CFG::a_s0..a_s3 / CFG::b_s0..b_s3 give each input's element stride per
 * output axis (0 along a broadcast axis). */
#ifndef DMX_ELTWISE_H
#define DMX_ELTWISE_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** out[i] = F::apply(a[...], b[...]) over the 4-D output, each input read through its strides.
 *  data_T: both inputs' activation type; res_T: the output's (F::apply returns it). */
template <class data_T, class res_T, class CFG, class F>
void broadcast_binary(const data_T a[CFG::a_size], const data_T b[CFG::b_size],
                      res_T out[CFG::d0 * CFG::d1 * CFG::d2 * CFG::d3]) {
    int o = 0;
    for (int i0 = 0; i0 < CFG::d0; i0++) {
        for (int i1 = 0; i1 < CFG::d1; i1++) {
            for (int i2 = 0; i2 < CFG::d2; i2++) {
                for (int i3 = 0; i3 < CFG::d3; i3++, o++) {
#pragma HLS PIPELINE II=1
                    const int ia = i0 * CFG::a_s0 + i1 * CFG::a_s1 + i2 * CFG::a_s2 + i3 * CFG::a_s3;
                    const int ib = i0 * CFG::b_s0 + i1 * CFG::b_s1 + i2 * CFG::b_s2 + i3 * CFG::b_s3;
                    out[o] = F::apply(a[ia], b[ib]);
                }
            }
        }
    }
}

/** Both inputs rescaled to a common scale with 20 bits of headroom, summed, rescaled to the output. */
template <class res_T, class CFG>
struct add_element {
    static res_T apply(int32_t a, int32_t b) {
        const int32_t x1 = (a + CFG::input1_offset) * (1 << CFG::left_shift);
        const int32_t x2 = (b + CFG::input2_offset) * (1 << CFG::left_shift);
        const int32_t s1 = dmx_mbqm(x1, CFG::input1_multiplier, CFG::input1_shift);
        const int32_t s2 = dmx_mbqm(x2, CFG::input2_multiplier, CFG::input2_shift);
        const int32_t raw = dmx_mbqm(dmx_wrap_add(s1, s2), CFG::output_multiplier, CFG::output_shift);
        return clamp<res_T>((int64_t)raw + CFG::output_offset, CFG::act_min, CFG::act_max);
    }
};

/** Product of the offset inputs, rescaled to the output. */
template <class res_T, class CFG>
struct mul_element {
    static res_T apply(int32_t a, int32_t b) {
        const int32_t raw = dmx_mbqm((a + CFG::input1_offset) * (b + CFG::input2_offset), CFG::output_multiplier,
                                     CFG::output_shift);
        return clamp<res_T>((int64_t)raw + CFG::output_offset, CFG::act_min, CFG::act_max);
    }
};

template <class data_T, class res_T, class CFG>
void add(const data_T a[CFG::a_size], const data_T b[CFG::b_size], res_T out[CFG::d0 * CFG::d1 * CFG::d2 * CFG::d3]) {
    broadcast_binary<data_T, res_T, CFG, add_element<res_T, CFG> >(a, b, out);
}

template <class data_T, class res_T, class CFG>
void mul(const data_T a[CFG::a_size], const data_T b[CFG::b_size], res_T out[CFG::d0 * CFG::d1 * CFG::d2 * CFG::d3]) {
    broadcast_binary<data_T, res_T, CFG, mul_element<res_T, CFG> >(a, b, out);
}

}  // namespace dmx

#endif
