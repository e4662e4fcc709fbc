/* TFLite's integer requantization for HLS: the C++ twin of dmxgen/graph/fixedpoint.py.
 * Every function returns exactly what the Python reference returns (and what
 * TFLite's common.h returns), including the one saturating case of the doubling
 * high multiply. Fixed-width standard types only: Vitis HLS accepts them as is. */
#ifndef DMX_FIXEDPOINT_H
#define DMX_FIXEDPOINT_H

#include <stdint.h>

namespace dmx {

/** Requantization flavours of a conv/FC layer (the graph's `rounding` attribute). */
enum { ROUND_DOUBLE = 0, ROUND_SINGLE = 1 };

/** Two's-complement wrap to 32 bits, what int32 hardware does on overflow. */
inline int32_t wrap32(int64_t x) {
    return (int32_t)(uint32_t)(uint64_t)x;
}

/** (a * b * 2 + 2^31) >> 32 with gemmlowp's nudge, truncating toward zero; saturates MIN*MIN. */
inline int32_t srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (int64_t)1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/** x / 2^exponent rounded half away from zero (gemmlowp RoundingDivideByPOT), in 64 bits. */
inline int64_t rdbpot(int64_t x, int exponent) {
    const int64_t mask = ((int64_t)1 << exponent) - 1;
    const int64_t remainder = x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/** TFLite's 32-bit MultiplyByQuantizedMultiplier: two roundings. */
inline int32_t mbqm(int32_t x, int32_t multiplier, int shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t shifted = wrap32((int64_t)x * ((int64_t)1 << left));
    return (int32_t)rdbpot(srdhm(shifted, multiplier), right);
}

/** TFLite's 64-bit MultiplyByQuantizedMultiplier (reference FULLY_CONNECTED): one rounding. */
inline int64_t mbqm_single(int32_t x, int32_t multiplier, int shift) {
    const int total = 31 - shift;
    return ((int64_t)x * (int64_t)multiplier + ((int64_t)1 << (total - 1))) >> total;
}

/** Saturate to [lo, hi] and narrow to int8. */
inline int8_t clamp8(int64_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/** Accumulator -> int8 output: scale, add the output zero point, clamp to the activation range. */
template <int ROUNDING>
inline int8_t requantize(int32_t acc, int32_t multiplier, int shift, int32_t output_offset,
                         int32_t act_min, int32_t act_max) {
    const int64_t scaled = ROUNDING == ROUND_SINGLE ? mbqm_single(acc, multiplier, shift)
                                                    : (int64_t)mbqm(acc, multiplier, shift);
    return clamp8(scaled + output_offset, act_min, act_max);
}

}  // namespace dmx

#endif
