/* TFLite's integer requantization for HLS. The arithmetic is dmx_int.h, the very file the C
 * export includes (the C twin of dmxgen/graph/fixedpoint.py); this header adds what the C++
 * kernels want on top of it: the rounding flavours as a template argument and the narrowing
 * to the kernel's result type. Fixed-width standard types only: Vitis HLS accepts them as is. */
#ifndef DMX_FIXEDPOINT_H
#define DMX_FIXEDPOINT_H

#include <stdint.h>

#include <limits>

/* The shared core's fixed-trip loops (gemmlowp exp, clz) unroll fully in synthesis. */
#ifndef DMX_INT_H
#define DMX_INT_UNROLL _Pragma("HLS UNROLL")
#endif
#include "dmx_int.h"

namespace dmx {

/** Requantization flavours of a conv/FC layer (the graph's `rounding` attribute). */
enum { ROUND_DOUBLE = 0, ROUND_SINGLE = 1 };

/** v saturated to [lo, hi] (bounds inside res_T's range) as a res_T. */
template <class res_T>
inline res_T clamp(int64_t v, int32_t lo, int32_t hi) {
    return (res_T)dmx_clamp64(v, lo, hi);
}

/** v saturated to the whole range of res_T. */
template <class res_T>
inline res_T saturate(int64_t v) {
    return clamp<res_T>(v, std::numeric_limits<res_T>::min(), std::numeric_limits<res_T>::max());
}

/** Accumulator -> output: scale, add the output zero point, clamp to the activation range. */
template <int ROUNDING, class res_T>
inline res_T requantize(int32_t acc, int32_t multiplier, int shift, int32_t output_offset, int32_t act_min,
                        int32_t act_max) {
    const int64_t scaled = ROUNDING == ROUND_SINGLE ? dmx_mbqm_single(acc, multiplier, shift)
                                                    : (int64_t)dmx_mbqm(acc, multiplier, shift);
    return clamp<res_T>(scaled + output_offset, act_min, act_max);
}

}  // namespace dmx

#endif
