/* STRIDED_SLICE (and SLICE, SPLIT, SPLIT_V): in[begin:end:step] per dim into the output, one
 * strided copy (CFG::copy: its loops, offsets and strides; dmxgen/graph/loops.py strided_slice). */
#ifndef DMX_STRIDED_SLICE_H
#define DMX_STRIDED_SLICE_H

#include "dmx_copy.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void strided_slice(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copy>(in, out);  // moves bytes: data_T and res_T are one type
}

}  // namespace dmx

#endif
