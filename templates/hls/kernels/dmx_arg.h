/* ARG_MAX / ARG_MIN: TFLite's ArgMinMax of int8 codes along one axis, the arithmetic of dmxgen/ops/arg_max.py
 * and the C kernels arg_max.c.j2 / arg_min.c.j2: the first index of the largest (smallest) code, a strict
 * comparison, so ties keep the earlier index. CFG: outer, axis_size, inner (the input as
 * [outer][axis_size][inner]), wide (int64 indices; res_T is the index type, int32_t or int64_t). */
#ifndef DMX_ARG_H
#define DMX_ARG_H

#include <stdint.h>

namespace dmx {

template <class data_T, class res_T, class CFG, bool LARGEST>
void arg_pick(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    for (int o = 0; o < CFG::outer; o++) {
        for (int i = 0; i < CFG::inner; i++) {
            const data_T *v = in + o * CFG::axis_size * CFG::inner + i;
            data_T best = v[0];
            int32_t idx = 0;
            for (int k = 1; k < CFG::axis_size; k++) {
                const data_T x = v[k * CFG::inner];
                if (LARGEST ? x > best : x < best) {
                    best = x;
                    idx = k;
                }
            }
            out[o * CFG::inner + i] = (res_T)idx;
        }
    }
}

template <class data_T, class res_T, class CFG>
void arg_max(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    arg_pick<data_T, res_T, CFG, true>(in, out);
}

template <class data_T, class res_T, class CFG>
void arg_min(const data_T in[CFG::in_size], res_T out[CFG::out_size]) {
    arg_pick<data_T, res_T, CFG, false>(in, out);
}

}  // namespace dmx

#endif
