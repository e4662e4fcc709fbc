/* QUANTIZE int8 -> int8 (a change of scale and zero point): TFLite's Requantize. */
#ifndef DMX_QUANTIZE_H
#define DMX_QUANTIZE_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

template <class CFG>
void requantize_int8(const int8_t in[CFG::size], int8_t out[CFG::size]) {
    for (int i = 0; i < CFG::size; i++) {
#pragma HLS PIPELINE II=1
        const int32_t scaled = mbqm(in[i] + CFG::input_offset, CFG::multiplier, CFG::shift);
        out[i] = clamp8((int64_t)scaled + CFG::output_offset, -128, 127);
    }
}

}  // namespace dmx

#endif
