"""The int64 requantizations of the 16x8 layers in dmx_int.h equal graph/fixedpoint.py's, sanitizers on.

dmx_mbqm_single64 (LiteRT's 16x8 FULLY_CONNECTED) splits the accumulator to stay exact without a
128-bit type; dmx_mbqm64 is TFLite's 64-bit MultiplyByQuantizedMultiplier (reduced multiplier).
Accumulators span TFLite's +-2^47, multipliers are Q31 ones (QuantizeMultiplier's [2^30, 2^31), or 0).
"""
from __future__ import annotations

import subprocess

import numpy as np

from dmxgen.backends import c_render
from dmxgen.backends.host import SANITIZE, WARNINGS
from dmxgen.graph import fixedpoint as fp
from tests.backends.conftest import needs_gcc

pytestmark = needs_gcc

MAIN = r"""
#include <stdio.h>
#include "dmx_int.h"

int main(void)
{
    int64_t v[3];
    while (fread(v, sizeof v, 1, stdin) == 1) {
        const int32_t m = (int32_t)v[1], s = (int32_t)v[2];
        const int64_t r[2] = {dmx_mbqm_single64(v[0], m, s), s < 8 ? dmx_mbqm64(v[0], m, s) : 0};
        fwrite(r, sizeof r, 1, stdout);
    }
    return 0;
}
"""
EDGE_X = [-(2**47), -(2**47) + 1, -(2**32) - 1, -(2**32), -(2**31) - 1, -(2**31), -1, 0, 1, 2**31 - 1, 2**31,
          2**32, 2**32 + 1, 2**47 - 1]
EDGE_M = [0, 2**30, 2**30 + 1, 0x7FFEFFFF, 0x7FFF0000, 2**31 - 1]


def test_c_int64_requantization_equals_python(tmp_path):
    src, exe = tmp_path / "fp64.c", tmp_path / "fp64"
    src.write_text(MAIN)
    subprocess.run(["gcc", *WARNINGS, "-O2", *SANITIZE, "-I", str(c_render.SHARED), str(src), "-o", str(exe)],
                   check=True)
    rng = np.random.default_rng(0)
    n = 30000
    x = np.concatenate([np.repeat(EDGE_X, len(EDGE_M) * 62), rng.integers(-(2**47), 2**47, n),
                        rng.integers(-(2**31), 2**31, n)])
    m = np.concatenate([np.tile(np.repeat(EDGE_M, 62), len(EDGE_X)), rng.integers(2**30, 2**31, 2 * n)])
    s = np.concatenate([np.tile(np.arange(-31, 31), len(EDGE_X) * len(EDGE_M)), rng.integers(-31, 31, 2 * n)])
    records = np.stack([x, m, s], axis=1).astype(np.int64)
    r = subprocess.run([str(exe)], input=records.tobytes(), capture_output=True, check=True)
    got = np.frombuffer(r.stdout, dtype=np.int64).reshape(-1, 2)
    np.testing.assert_array_equal(got[:, 0], fp.multiply_by_quantized_multiplier_single(x, m, s))
    low = s < 8
    np.testing.assert_array_equal(got[low, 1], fp.multiply_by_quantized_multiplier_int64(x[low], m[low], s[low]))
    # against exact Python integers where no cut applies (t >= 32 or |x| <= 2^32)
    exact = [(int(a) * int(b) + (1 << (30 - int(c)))) >> (31 - int(c)) for a, b, c in zip(x, m, s)]
    keep = (s <= -1) | (np.abs(x) <= 2**32)
    np.testing.assert_array_equal(got[keep, 0], np.array(exact, dtype=object)[keep].astype(np.int64))
