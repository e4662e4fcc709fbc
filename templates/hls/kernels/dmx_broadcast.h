/* The broadcast walk of a kind printed from its kernel_params (dmxgen/ops/_select.py broadcast_shape:
 * CFG::shape::n0..n3, a_stride0..3, b_stride0..3; CFG::in_size, in1_size), run by dmx_eltwise.h's
 * broadcast_binary, the loop ADD and MUL use. */
#ifndef DMX_BROADCAST_H
#define DMX_BROADCAST_H

#include "dmx_eltwise.h"

namespace dmx {

/** CFG's broadcast walk under the names broadcast_binary reads. */
template <class CFG>
struct walk_cfg {
    typedef typename CFG::shape S;
    static const int a_size = CFG::in_size, b_size = CFG::in1_size;
    static const int d0 = S::n0, d1 = S::n1, d2 = S::n2, d3 = S::n3;
    static const int a_s0 = S::a_stride0, a_s1 = S::a_stride1, a_s2 = S::a_stride2, a_s3 = S::a_stride3;
    static const int b_s0 = S::b_stride0, b_s1 = S::b_stride1, b_s2 = S::b_stride2, b_s3 = S::b_stride3;
};

/** out[i] = F::apply(a[...], b[...]) over CFG's broadcast walk. */
template <class data_T, class res_T, class CFG, class F>
void broadcast_walk(const data_T a[CFG::in_size], const data_T b[CFG::in1_size], res_T out[CFG::out_size]) {
    broadcast_binary<data_T, res_T, walk_cfg<CFG>, F>(a, b, out);
}

}  // namespace dmx

#endif
