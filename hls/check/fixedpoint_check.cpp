/* Runs the HLS kernels' fixed-point routines (templates/hls/kernels) on the values it reads, so that
 * tests/backends/test_hls_fixedpoint.py can hold them equal to dmxgen/graph/fixedpoint.py.
 * Input: one call a line, "<function> <int> ...". Output: one integer a line.
 * Build: g++ -std=c++14 -I templates/hls/kernels hls/check/fixedpoint_check.cpp */
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
            r = dmx::srdhm((int32_t)a, (int32_t)b);
        } else if (!std::strcmp(fn, "rdbpot")) {
            r = dmx::rdbpot(a, (int)b);
        } else if (!std::strcmp(fn, "mbqm")) {
            r = dmx::mbqm((int32_t)a, (int32_t)b, (int)c);
        } else if (!std::strcmp(fn, "mbqm_single")) {
            r = dmx::mbqm_single((int32_t)a, (int32_t)b, (int)c);
        } else if (!std::strcmp(fn, "sat_mul_pot")) {
            r = dmx::sat_mul_pot((int32_t)a, (int)b);
        } else if (!std::strcmp(fn, "exp_on_negative_values")) {
            r = dmx::exp_on_negative_values_q5((int32_t)a);
        } else if (!std::strcmp(fn, "one_over_one_plus_x")) {
            r = dmx::one_over_one_plus_x((int32_t)a);
        } else {
            std::fprintf(stderr, "fixedpoint_check: unknown function %s\n", fn);
            return 2;
        }
        std::printf("%lld\n", r);
    }
    return 0;
}
