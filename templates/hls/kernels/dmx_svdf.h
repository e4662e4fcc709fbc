/* SVDF: TFLite's integer SVDF (int8 input and feature weights, int16 time weights and activation state),
 * the arithmetic of dmxgen/ops/svdf.py and the C kernel svdf.c.j2. CFG: the sizes (batch, n_input, n_filter,
 * n_memory, rank), the zero points, the two multipliers (scale_1_*: the feature activations -> the state,
 * scale_2_*: the time dot products -> the output) and has_bias. The ROMs: the feature weights
 * [n_filter][n_input], the time weights [n_filter][n_memory], the bias [n_filter / rank].
 * Each call runs one time step and shifts the activation state in place: the layer keeps it in a static
 * array across calls of the top, as TFLite keeps its variable tensor across invoke()s, and resets it when
 * the top's reset_state is set. */
#ifndef DMX_SVDF_H
#define DMX_SVDF_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void svdf(const data_T in[CFG::in_size], int16_t state[CFG::in1_size], res_T out[CFG::out_size],
          const int8_t weights_feature[CFG::n_filter * CFG::n_input],
          const int16_t weights_time[CFG::n_filter * CFG::n_memory], const int32_t bias[]) {
    const int n_unit = CFG::n_filter / CFG::rank;
    for (int b = 0; b < CFG::batch; b++) {
        const data_T *x = in + b * CFG::n_input;
        int16_t *memory = state + b * CFG::n_filter * CFG::n_memory;
        int16_t newest[CFG::n_filter];  // this step's feature activations: the memories' last column
        for (int f = 0; f < CFG::n_filter; f++) {
            int64_t acc = 0;  // TFLite's int32 sum, wrapped once at the end
            for (int i = 0; i < CFG::n_input; i++) {
                acc += ((int32_t)x[i] - CFG::input_zp) * (int32_t)weights_feature[f * CFG::n_input + i];
            }
            const int32_t v = dmx_mbqm(dmx_wrap32(acc), CFG::scale_1_mult, CFG::scale_1_shift);
            newest[f] = (int16_t)dmx_clamp64(v, INT16_MIN, INT16_MAX);
        }
        for (int u = 0; u < n_unit; u++) {
            int64_t acc = CFG::has_bias ? bias[u] : 0;
            for (int r = 0; r < CFG::rank; r++) {
                const int f = u * CFG::rank + r;
                // the memory shifted left by one, in place: slot j takes slot j + 1, the last the newest
                int16_t *m = memory + f * CFG::n_memory;
                for (int j = 0; j < CFG::n_memory; j++) {
                    m[j] = j + 1 < CFG::n_memory ? m[j + 1] : newest[f];
                    acc += (int32_t)weights_time[f * CFG::n_memory + j] * (int32_t)m[j];
                }
            }
            const int32_t y = dmx_mbqm(dmx_wrap32(acc), CFG::scale_2_mult, CFG::scale_2_shift);
            out[b * n_unit + u] = (res_T)dmx_offset_clamp(y, CFG::output_zp, -128, 127);
        }
    }
}

}  // namespace dmx

#endif
