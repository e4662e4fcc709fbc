/* The strided copy PAD (and next CONCAT, TRANSPOSE, STRIDED_SLICE) fills in, for any element type.
 * W is a walk of dmxgen/graph/loops.py: for every index (a, b, c, d) < (n0, n1, n2, n3),
 * out[dst_offset + a*d0 + b*d1 + c*d2 + d*d3] = in[src_offset + a*s0 + b*s1 + c*s2 + d*s3]. */
#ifndef DMX_COPY_H
#define DMX_COPY_H

namespace dmx {

template <class T, class W>
void strided_copy(const T in[W::src_size], T out[W::dst_size]) {
    for (int a = 0; a < W::n0; a++) {
        for (int b = 0; b < W::n1; b++) {
            for (int c = 0; c < W::n2; c++) {
                for (int d = 0; d < W::n3; d++) {
#pragma HLS PIPELINE II=1
                    out[W::dst_offset + a * W::d0 + b * W::d1 + c * W::d2 + d * W::d3] =
                        in[W::src_offset + a * W::s0 + b * W::s1 + c * W::s2 + d * W::s3];
                }
            }
        }
    }
}

/** Every element of out set to value. */
template <class T, int N>
void fill(T out[N], T value) {
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
        out[i] = value;
    }
}

}  // namespace dmx

#endif
