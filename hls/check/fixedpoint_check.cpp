/* Runs the HLS kernels' fixed-point routines (templates/common/dmx_int.h as the HLS kernels include
 * it) on the values it reads, so that tests/backends/test_hls_fixedpoint.py can hold them equal to
 * dmxgen/graph/fixedpoint.py. Input: one call a line, "<function> <int> ...". Output: one integer a line.
 * Build: g++ -std=c++14 -I templates/hls/kernels -I templates/common hls/check/fixedpoint_check.cpp */
#include <cstdio>
#include <cstring>

#include "dmx_fixedpoint.h"
#include "dmx_softmax.h"

int main() {
    char fn[32];
    long long a, b, c;
    while (std::scanf("%31s %lld %lld %lld", fn, &a, &b, &c) == 4) {
        long long r;
        if (!std::strcmp(fn, "srdhm")) {
            r = dmx_srdhm((int32_t)a, (int32_t)b);
        } else if (!std::strcmp(fn, "rdbpot")) {
            r = dmx_rdbpot64(a, (int32_t)b);
        } else if (!std::strcmp(fn, "mbqm")) {
            r = dmx_mbqm((int32_t)a, (int32_t)b, (int32_t)c);
        } else if (!std::strcmp(fn, "mbqm_single")) {
            r = dmx_mbqm_single((int32_t)a, (int32_t)b, (int32_t)c);
        } else if (!std::strcmp(fn, "sat_mul_pot")) {
            r = dmx_sat_mul_pot((int32_t)a, (int32_t)b);
        } else if (!std::strcmp(fn, "exp_on_negative_values")) {
            r = dmx_exp_on_negative_values((int32_t)a);
        } else if (!std::strcmp(fn, "one_over_one_plus_x")) {
            r = dmx_one_over_one_plus_x((int32_t)a);
        } else {
            std::fprintf(stderr, "fixedpoint_check: unknown function %s\n", fn);
            return 2;
        }
        std::printf("%lld\n", r);
    }
    return 0;
}
