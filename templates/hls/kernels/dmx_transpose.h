/* TRANSPOSE: the input through permuted strides into the output, one strided copy
 * (CFG::copy: its loops, offsets and strides; dmxgen/graph/loops.py transpose). */
#ifndef DMX_TRANSPOSE_H
#define DMX_TRANSPOSE_H

#include "dmx_copy.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void transpose(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copy>(in, out);  // moves bytes: data_T and res_T are one type
}

}  // namespace dmx

#endif
