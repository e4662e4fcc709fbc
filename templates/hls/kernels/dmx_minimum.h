/* MINIMUM with numpy broadcasting: the smaller int8 code of each pair (inputs and output on one grid). */
#ifndef DMX_MINIMUM_H
#define DMX_MINIMUM_H

#include "dmx_broadcast.h"

namespace dmx {

template <class res_T>
struct minimum_element {
    static res_T apply(int32_t a, int32_t b) { return (res_T)(a < b ? a : b); }
};

template <class data_T, class res_T, class CFG>
void minimum(const data_T a[CFG::in_size], const data_T b[CFG::in1_size], res_T out[CFG::out_size]) {
    broadcast_walk<data_T, res_T, CFG, minimum_element<res_T> >(a, b, out);
}

}  // namespace dmx

#endif
