/* CONCATENATION (torch.cat): each input's strided copy into the output in turn (CFG::copies0,
 * copies1, ...: where input k's elements land; dmxgen/graph/loops.py concat). One overload per
 * input count, 1 to 8: a concat of more inputs has no HLS kernel. */
#ifndef DMX_CONCAT_H
#define DMX_CONCAT_H

#include "dmx_copy.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies>(in0, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size], const data_T in2[CFG::in2_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
    strided_copy<data_T, typename CFG::copies2>(in2, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size], const data_T in2[CFG::in2_size], const data_T in3[CFG::in3_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
    strided_copy<data_T, typename CFG::copies2>(in2, out);
    strided_copy<data_T, typename CFG::copies3>(in3, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size], const data_T in2[CFG::in2_size], const data_T in3[CFG::in3_size], const data_T in4[CFG::in4_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
    strided_copy<data_T, typename CFG::copies2>(in2, out);
    strided_copy<data_T, typename CFG::copies3>(in3, out);
    strided_copy<data_T, typename CFG::copies4>(in4, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size], const data_T in2[CFG::in2_size], const data_T in3[CFG::in3_size], const data_T in4[CFG::in4_size], const data_T in5[CFG::in5_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
    strided_copy<data_T, typename CFG::copies2>(in2, out);
    strided_copy<data_T, typename CFG::copies3>(in3, out);
    strided_copy<data_T, typename CFG::copies4>(in4, out);
    strided_copy<data_T, typename CFG::copies5>(in5, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size], const data_T in2[CFG::in2_size], const data_T in3[CFG::in3_size], const data_T in4[CFG::in4_size], const data_T in5[CFG::in5_size], const data_T in6[CFG::in6_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
    strided_copy<data_T, typename CFG::copies2>(in2, out);
    strided_copy<data_T, typename CFG::copies3>(in3, out);
    strided_copy<data_T, typename CFG::copies4>(in4, out);
    strided_copy<data_T, typename CFG::copies5>(in5, out);
    strided_copy<data_T, typename CFG::copies6>(in6, out);
}

template <class data_T, class res_T, class CFG>
void concat(const data_T in0[CFG::in_size], const data_T in1[CFG::in1_size], const data_T in2[CFG::in2_size], const data_T in3[CFG::in3_size], const data_T in4[CFG::in4_size], const data_T in5[CFG::in5_size], const data_T in6[CFG::in6_size], const data_T in7[CFG::in7_size],
            res_T out[CFG::out_size]) {
    strided_copy<data_T, typename CFG::copies0>(in0, out);
    strided_copy<data_T, typename CFG::copies1>(in1, out);
    strided_copy<data_T, typename CFG::copies2>(in2, out);
    strided_copy<data_T, typename CFG::copies3>(in3, out);
    strided_copy<data_T, typename CFG::copies4>(in4, out);
    strided_copy<data_T, typename CFG::copies5>(in5, out);
    strided_copy<data_T, typename CFG::copies6>(in6, out);
    strided_copy<data_T, typename CFG::copies7>(in7, out);
}

}  // namespace dmx

#endif
