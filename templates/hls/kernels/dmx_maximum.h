/* MAXIMUM with numpy broadcasting: the larger int8 code of each pair (inputs and output on one grid). */
#ifndef DMX_MAXIMUM_H
#define DMX_MAXIMUM_H

#include "dmx_broadcast.h"

namespace dmx {

template <class res_T>
struct maximum_element {
    static res_T apply(int32_t a, int32_t b) { return (res_T)(a > b ? a : b); }
};

template <class data_T, class res_T, class CFG>
void maximum(const data_T a[CFG::in_size], const data_T b[CFG::in1_size], res_T out[CFG::out_size]) {
    broadcast_walk<data_T, res_T, CFG, maximum_element<res_T> >(a, b, out);
}

}  // namespace dmx

#endif
