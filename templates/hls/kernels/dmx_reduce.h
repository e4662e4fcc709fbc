/* REDUCE_MAX and MEAN of an integer tensor over a set of axes (shapes padded to 4-D).
 * CFG::s0..s3 are the output strides of each input axis, 0 along a reduced axis, so every
 * input element knows the output it folds into. */
#ifndef DMX_REDUCE_H
#define DMX_REDUCE_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

/** acc[o] = R::fold(acc[o], x) over the input elements x that output o reduces; out[o] = R::finish(acc[o]).
 *  data_T / res_T: the input and output activation types (R::finish returns a res_T). */
template <class data_T, class res_T, class CFG, class R>
void reduce(const data_T in[CFG::d0 * CFG::d1 * CFG::d2 * CFG::d3], res_T out[CFG::out_size]) {
    int32_t acc[CFG::out_size];
    for (int o = 0; o < CFG::out_size; o++) {
        acc[o] = R::init();
    }
    int i = 0;
    for (int a = 0; a < CFG::d0; a++) {
        for (int b = 0; b < CFG::d1; b++) {
            for (int c = 0; c < CFG::d2; c++) {
                for (int d = 0; d < CFG::d3; d++, i++) {
#pragma HLS PIPELINE
                    const int o = a * CFG::s0 + b * CFG::s1 + c * CFG::s2 + d * CFG::s3;
                    acc[o] = R::fold(acc[o], in[i]);
                }
            }
        }
    }
    for (int o = 0; o < CFG::out_size; o++) {
#pragma HLS PIPELINE II=1
        out[o] = R::finish(acc[o]);
    }
}

/** The largest element; the output has the input's type and scale. */
template <class data_T, class res_T>
struct max_reducer {
    static int32_t init() { return std::numeric_limits<data_T>::min(); }
    static int32_t fold(int32_t acc, int32_t x) { return x > acc ? x : acc; }
    static res_T finish(int32_t acc) { return (res_T)acc; }
};

/** TFLite's reference_ops::QuantizedMeanOrSum: the int32 sum minus zp_in * count, then one
 *  requantization whose multiplier already holds 1/count (CFG::multiplier, CFG::shift). */
template <class res_T, class CFG>
struct mean_reducer {
    static int32_t init() { return CFG::input_offset * CFG::count; }
    static int32_t fold(int32_t acc, int32_t x) { return acc + x; }
    static res_T finish(int32_t acc) {
        return saturate<res_T>((int64_t)dmx_mbqm(acc, CFG::multiplier, CFG::shift) + CFG::output_offset);
    }
};

template <class data_T, class res_T, class CFG>
void reduce_max(const data_T in[CFG::d0 * CFG::d1 * CFG::d2 * CFG::d3], res_T out[CFG::out_size]) {
    reduce<data_T, res_T, CFG, max_reducer<data_T, res_T> >(in, out);
}

template <class data_T, class res_T, class CFG>
void mean(const data_T in[CFG::d0 * CFG::d1 * CFG::d2 * CFG::d3], res_T out[CFG::out_size]) {
    reduce<data_T, res_T, CFG, mean_reducer<res_T, CFG> >(in, out);
}

}  // namespace dmx

#endif
