/* QUANTIZE between integer tensors (a change of scale and zero point): TFLite's Requantize.
 * The output saturates to the full range of res_T, as TFLite's does to its output type's. */
#ifndef DMX_QUANTIZE_H
#define DMX_QUANTIZE_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void requantize_int8(const data_T in[CFG::size], res_T out[CFG::size]) {
    for (int i = 0; i < CFG::size; i++) {
#pragma HLS PIPELINE II=1
        const int32_t scaled = dmx_mbqm(in[i] + CFG::input_offset, CFG::multiplier, CFG::shift);
        out[i] = saturate<res_T>((int64_t)scaled + CFG::output_offset);
    }
}

}  // namespace dmx

#endif
