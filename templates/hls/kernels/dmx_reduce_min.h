/* REDUCE_MIN: every input element folded into the output element CFG::walk maps it to
 * (dmxgen/ops/reduce_min.py: the source walks the input in order, the destination has stride 0
 * along the reduced axes). Input and output share one grid: data_T and res_T are one type. */
#ifndef DMX_REDUCE_MIN_H
#define DMX_REDUCE_MIN_H

namespace dmx {

template <class data_T, class res_T, class CFG>
void reduce_min(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    typedef typename CFG::walk W;
    for (int i = 0; i < CFG::out_size; i++) {
#pragma HLS PIPELINE II=1
        out[i] = 127;
    }
    for (int a = 0; a < W::n0; a++) {
        for (int b = 0; b < W::n1; b++) {
            for (int c = 0; c < W::n2; c++) {
                for (int d = 0; d < W::n3; d++) {
#pragma HLS PIPELINE II=1
                    const res_T v = in[W::src_offset + a * W::s0 + b * W::s1 + c * W::s2 + d * W::s3];
                    res_T &o = out[W::dst_offset + a * W::d0 + b * W::d1 + c * W::d2 + d * W::d3];
                    o = v < o ? v : o;
                }
            }
        }
    }
}

}  // namespace dmx

#endif
