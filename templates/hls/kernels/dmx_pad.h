/* PAD / PADV2 with a constant value: the output filled, then the input copied into place by
 * dmx_copy.h's strided copy (CFG::walk: its loops, offsets and strides; dmxgen/graph/loops.py). */
#ifndef DMX_PAD_H
#define DMX_PAD_H

#include "dmx_copy.h"

namespace dmx {

template <class T, class CFG>
void pad(const T in[CFG::in_size], T out[CFG::out_size]) {
    fill<T, CFG::out_size>(out, (T)CFG::value);
    strided_copy<T, typename CFG::walk>(in, out);
}

}  // namespace dmx

#endif
