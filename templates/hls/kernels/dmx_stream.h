/* Moving whole tensors between hls::stream FIFOs and local buffers, for the DATAFLOW top.
 * hls_stream.h is Xilinx's: Vitis HLS ships it; for csim on the host the hls4ml package
 * provides it (hls/Makefile adds that folder with -isystem). */
#ifndef DMX_STREAM_H
#define DMX_STREAM_H

#include <stdint.h>

#include <hls_stream.h>

namespace dmx {

/** N elements of type T (deduced from the stream), in order. */
template <int N, class T>
void read_stream(hls::stream<T> &s, T buf[N]) {
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
        buf[i] = s.read();
    }
}

template <int N, class T>
void write_stream(const T buf[N], hls::stream<T> &s) {
    for (int i = 0; i < N; i++) {
#pragma HLS PIPELINE II=1
        s.write(buf[i]);
    }
}

}  // namespace dmx

#endif
