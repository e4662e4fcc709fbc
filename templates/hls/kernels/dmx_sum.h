/* SUM: int8 sum over axes (dmxgen/ops/sum.py, TFLite Micro's QuantizedMeanOrSum with compute_sum).
 * Output-major: CFG::outer walks the kept dims (src: the input, dst: the output element),
 * CFG::inner the reduced dims from there; one int32 accumulator per output, no scratch. */
#ifndef DMX_SUM_H
#define DMX_SUM_H

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void sum(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    typedef typename CFG::outer O;
    typedef typename CFG::inner R;
    for (int a = 0; a < O::n0; a++) {
        for (int b = 0; b < O::n1; b++) {
            for (int c = 0; c < O::n2; c++) {
                for (int d = 0; d < O::n3; d++) {
                    const int base = O::src_offset + a * O::s0 + b * O::s1 + c * O::s2 + d * O::s3;
                    int32_t acc = 0;
                    for (int e = 0; e < R::n0; e++) {
                        for (int f = 0; f < R::n1; f++) {
                            for (int g = 0; g < R::n2; g++) {
                                for (int h = 0; h < R::n3; h++) {
#pragma HLS PIPELINE II=1
                                    acc += in[base + e * R::s0 + f * R::s1 + g * R::s2 + h * R::s3];
                                }
                            }
                        }
                    }
                    const int32_t raw = dmx_mbqm(acc + CFG::zp_sum, CFG::mult, CFG::shift);
                    out[O::dst_offset + a * O::d0 + b * O::d1 + c * O::d2 + d * O::d3] =
                        saturate<res_T>((int64_t)raw + CFG::out_offset);
                }
            }
        }
    }
}

}  // namespace dmx

#endif
