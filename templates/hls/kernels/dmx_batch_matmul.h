/* BATCH_MATMUL: int8 x int8 of two activations with broadcast batch dims (TFLite's reference
 * batch_matmul.h). CFG (dmxgen/ops/batch_matmul.py kernel_params): batches0..2, each operand's
 * element stride per batch dim (0: broadcast), rows/cols/depth, the strides inside one matrix
 * (adj_x / adj_y swap them), the operands' offsets and the output requantization. */
#ifndef DMX_BATCH_MATMUL_H
#define DMX_BATCH_MATMUL_H

#include <stdint.h>

#include "dmx_fixedpoint.h"

namespace dmx {

template <class data_T, class res_T, class CFG>
void batch_matmul(const data_T lhs[CFG::in_size], const data_T rhs[CFG::in1_size], res_T out[CFG::out_size]) {
    int o = 0;
    for (int b0 = 0; b0 < CFG::batches0; b0++) {
        for (int b1 = 0; b1 < CFG::batches1; b1++) {
            for (int b2 = 0; b2 < CFG::batches2; b2++) {
                const int a = b0 * CFG::lhs_batch_stride0 + b1 * CFG::lhs_batch_stride1 + b2 * CFG::lhs_batch_stride2;
                const int b = b0 * CFG::rhs_batch_stride0 + b1 * CFG::rhs_batch_stride1 + b2 * CFG::rhs_batch_stride2;
                for (int i = 0; i < CFG::rows; i++) {
                    for (int j = 0; j < CFG::cols; j++, o++) {
                        int32_t acc = 0;  // the exporter bounds depth: no int32 overflow
                        for (int k = 0; k < CFG::depth; k++) {
#pragma HLS PIPELINE II=1
                            const int32_t x = lhs[a + i * CFG::lhs_row_stride + k * CFG::lhs_depth_stride];
                            const int32_t y = rhs[b + k * CFG::rhs_depth_stride + j * CFG::rhs_col_stride];
                            acc += (x + CFG::lhs_offset) * (y + CFG::rhs_offset);
                        }
                        out[o] = requantize<ROUND_DOUBLE, res_T>(acc, CFG::out_mult, CFG::out_shift, CFG::out_offset,
                                                                 CFG::act_min, CFG::act_max);
                    }
                }
            }
        }
    }
}

}  // namespace dmx

#endif
