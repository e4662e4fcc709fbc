/* MIRROR_PAD: the input into the interior (CFG::interior), then for each of the four dims the
 * rows before and after it copied from the output itself (CFG::before<k>, CFG::after<k>; empty
 * walks for a dim without padding). dmxgen/ops/mirror_pad.py derives the walks. */
#ifndef DMX_MIRROR_PAD_H
#define DMX_MIRROR_PAD_H

#include "dmx_copy.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void mirror_pad(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::interior>(in, out);  // moves bytes: data_T and res_T are one type
    strided_copy<res_T, typename CFG::before0>(out, out);
    strided_copy<res_T, typename CFG::after0>(out, out);
    strided_copy<res_T, typename CFG::before1>(out, out);
    strided_copy<res_T, typename CFG::after1>(out, out);
    strided_copy<res_T, typename CFG::before2>(out, out);
    strided_copy<res_T, typename CFG::after2>(out, out);
    strided_copy<res_T, typename CFG::before3>(out, out);
    strided_copy<res_T, typename CFG::after3>(out, out);
}

}  // namespace dmx

#endif
