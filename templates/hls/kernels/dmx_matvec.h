/* acc[r] += sum_c W[r][c] * x[c]: one product per weight storage format (docs/formats.md).
 * x holds input values with the input offset already added (int8 layers: -255..255; 16x8 layers:
 * the int16 codes, zero point 0); W is the 2-D view of the weights a kernel walks (FC [out, in],
 * conv [out, kh*kw*in]). ACC (deduced from acc): int32, or int64 for 16x8 (each product fits int32). */
#ifndef DMX_MATVEC_H
#define DMX_MATVEC_H

#include <stdint.h>

namespace dmx {

/** Dense row-major int8 W (R x C); U multipliers per row, from the reuse factor (U = ceil(C / reuse)). */
template <int R, int C, int U, class ACC>
void matvec_dense(const int16_t x[C], const int8_t w[R * C], ACC acc[R]) {
#pragma HLS ARRAY_PARTITION variable=x cyclic factor=U
#pragma HLS ARRAY_PARTITION variable=w cyclic factor=U
    for (int r = 0; r < R; r++) {
        ACC sum = acc[r];
        for (int c = 0; c < C; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS UNROLL factor=U
            sum += (int32_t)x[c] * (int32_t)w[r * C + c];
        }
        acc[r] = sum;
    }
}

/** CSR: values[nnz], col_idx[nnz] (uint16), row_ptr[R + 1] (uint16 or uint32, type PTR). */
template <int R, int C, int NNZ, typename PTR, class ACC>
void matvec_csr(const int16_t x[C], const int8_t values[NNZ], const uint16_t col_idx[NNZ],
                const PTR row_ptr[R + 1], ACC acc[R]) {
    for (int r = 0; r < R; r++) {
        ACC sum = acc[r];
        const int32_t end = (int32_t)row_ptr[r + 1];
        for (int32_t j = (int32_t)row_ptr[r]; j < end; j++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=0 max=C
            sum += (int32_t)x[col_idx[j]] * (int32_t)values[j];
        }
        acc[r] = sum;
    }
}

/** dCSR, decoded on the fly exactly as "Decoding row r" in docs/formats.md: groups of 16 lanes,
 *  lane j of group k reads column P + ((j*s + delta_j) mod 256), P chained from the group minimums.
 *  V values, G groups, M extension masks; array lengths are at least 1 (empty arrays hold one 0). */
template <int R, int C, int V, int G, int M, class ACC>
void matvec_dcsr(const int16_t x[C], const int8_t values[V], const uint8_t delta_indices[16 * ((G + 1) / 2)],
                 const uint8_t bitmaps[(G + 1) / 2], const uint16_t bitmasks[M], const int8_t group_minimums[G],
                 const int16_t row_offsets[R], const uint32_t nnze[1], ACC acc[R]) {
    const int32_t per_row = (int32_t)(nnze[0] / (uint32_t)R);
    int32_t g = 0;  // group counter over the whole matrix
    int32_t m = 0;  // next extension mask
    int32_t v = 0;  // first value of the row
    for (int r = 0; r < R; r++) {
        const int32_t n = per_row + row_offsets[r];
        const int32_t s = n > 0 ? (C + n / 2) / n : 0;
        const int32_t groups = (n + 15) / 16;
        int32_t base = 0;
        ACC sum = acc[r];
        for (int32_t k = 0; k < groups; k++, g++) {
#pragma HLS PIPELINE II=1
#pragma HLS LOOP_TRIPCOUNT min=0 max=C
            base += group_minimums[g] + (k > 0 ? 16 * s : 0);
            const int32_t pair = g >> 1;
            const int32_t map = (g & 1) ? (bitmaps[pair] & 0xF) : (bitmaps[pair] >> 4);
            uint16_t masks[4];
            for (int b = 0; b < 4; b++) {
#pragma HLS UNROLL
                masks[b] = ((map >> b) & 1) ? bitmasks[m++] : (uint16_t)0;
            }
            const int32_t real = n - 16 * k;
            for (int j = 0; j < 16; j++) {
#pragma HLS UNROLL
                const int32_t byte = delta_indices[16 * pair + j];
                int32_t delta = (g & 1) ? (byte & 0xF) : (byte >> 4);
                for (int b = 0; b < 4; b++) {
#pragma HLS UNROLL
                    delta += ((masks[b] >> j) & 1) << (4 + b);
                }
                if (j < real) {
                    const int32_t col = base + ((j * s + delta) & 255);
                    sum += (int32_t)x[col] * (int32_t)values[v + 16 * k + j];
                }
            }
        }
        v += n;
        acc[r] = sum;
    }
}

}  // namespace dmx

#endif
