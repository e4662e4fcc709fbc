/* GATHER by run-time indices: TFLite's reference_ops::Gather, the arithmetic of dmxgen/ops/gather.py and the
 * C kernel gather.c.j2. out[b][o][c][i] = params[b][o][indices[b][c]][i] over the params as
 * [batches][outer][axis_size][inner]. An index outside [0, axis_size) reads nothing: its slice is the zero
 * point, as in the C kernel (which also reports it; the top function has no status port, docs/gather.md).
 * CFG: batches, outer, axis_size, inner, coords, wide (int64 indices), zero_point. The params' and the
 * indices' types are those of the arguments (a ROM of int8 / int16 codes or a computed input, int32 / int64
 * indices), so data_T is unused. */
#ifndef DMX_GATHER_H
#define DMX_GATHER_H

#include <stdint.h>

namespace dmx {

template <class data_T, class res_T, class CFG, class params_T, class index_T>
void gather(const params_T params[CFG::batches * CFG::outer * CFG::axis_size * CFG::inner],
            const index_T indices[CFG::batches * CFG::coords], res_T out[CFG::out_size]) {
    for (int b = 0; b < CFG::batches; b++) {
        for (int o = 0; o < CFG::outer; o++) {
            const int row = b * CFG::outer + o;
            for (int c = 0; c < CFG::coords; c++) {
                const int64_t k = (int64_t)indices[b * CFG::coords + c];
                const bool ok = k >= 0 && k < CFG::axis_size;
                for (int i = 0; i < CFG::inner; i++) {
                    out[(row * CFG::coords + c) * CFG::inner + i] =
                        ok ? (res_T)params[(row * CFG::axis_size + (int)k) * CFG::inner + i] : (res_T)CFG::zero_point;
                }
            }
        }
    }
}

}  // namespace dmx

#endif
