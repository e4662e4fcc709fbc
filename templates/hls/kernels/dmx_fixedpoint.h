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

/** Requantization flavours of a conv/FC layer (the graph's `rounding` attribute): TFLite's two
 *  roundings, one rounding half up (power-of-two layers), LiteRT's FULLY_CONNECTED (one rounding, ties
 *  away from zero), and 16x8's 64-bit MultiplyByQuantizedMultiplier. */
enum { ROUND_DOUBLE = 0, ROUND_SINGLE = 1, ROUND_REDUCED = 2, ROUND_AWAY = 3 };

/** The accumulator type of a layer whose bias is bias_T: int32 (int8 layers), int64 (TFLite's 16x8,
 *  whose int16 x int8 products summed over a large patch outgrow int32). */
template <class bias_T>
struct acc_of {
    typedef int32_t type;
};
template <>
struct acc_of<int64_t> {
    typedef int64_t type;
};

/** An int32 accumulator times multiplier * 2^shift (int8 layers). */
template <int ROUNDING>
inline int64_t scale_acc(int32_t acc, int32_t multiplier, int shift) {
    return ROUNDING == ROUND_SINGLE    ? dmx_mbqm_single(acc, multiplier, shift)
           : ROUNDING == ROUND_AWAY    ? dmx_mbqm_away(acc, multiplier, shift)
           : ROUNDING == ROUND_REDUCED ? dmx_mbqm64(acc, multiplier, shift)
                                       : (int64_t)dmx_mbqm(acc, multiplier, shift);
}

/** An int64 accumulator (16x8 layers) times multiplier * 2^shift; double rounding reads it wrapped to
 *  int32, as TFLite Micro's int32-accumulator 16x8 path does. */
template <int ROUNDING>
inline int64_t scale_acc(int64_t acc, int32_t multiplier, int shift) {
    return ROUNDING == ROUND_SINGLE    ? dmx_mbqm_single64(acc, multiplier, shift)
           : ROUNDING == ROUND_AWAY    ? dmx_mbqm_away64(acc, multiplier, shift)
           : ROUNDING == ROUND_REDUCED ? dmx_mbqm64(acc, multiplier, shift)
                                       : (int64_t)dmx_mbqm(dmx_wrap32(acc), multiplier, shift);
}

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

/** Accumulator (int32 or int64) -> output: scale, add the output zero point, clamp to the activation range. */
template <int ROUNDING, class res_T, class acc_T>
inline res_T requantize(acc_T acc, int32_t multiplier, int shift, int32_t output_offset, int32_t act_min,
                        int32_t act_max) {
    return clamp<res_T>(scale_acc<ROUNDING>(acc, multiplier, shift) + output_offset, act_min, act_max);
}

}  // namespace dmx

#endif
