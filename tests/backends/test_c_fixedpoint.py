"""The one C implementation of TFLite's rounding (kernels/common.c.j2) equals graph/fixedpoint.py."""
from __future__ import annotations

import subprocess

import numpy as np

from dmxgen.backends import c_render
from dmxgen.backends.host import SANITIZE, WARNINGS
from dmxgen.graph import fixedpoint as fp
from tests.backends.conftest import needs_gcc

pytestmark = needs_gcc

EDGES = [-(2**31), -(2**31) + 1, -(2**30), -65536, -255, -1, 0, 1, 2, 255, 65535, 2**30, 2**31 - 2, 2**31 - 1]


def test_c_rounding_equals_python(tmp_path):
    src = tmp_path / "fp.c"
    src.write_text(c_render.render("testing/fixedpoint_main.c.j2"))
    exe = tmp_path / "fp"
    subprocess.run(["gcc", *WARNINGS, "-O2", *SANITIZE, "-I", str(c_render.SHARED), str(src), "-o", str(exe)],
                   check=True)
    rng = np.random.default_rng(0)
    a = np.concatenate([np.repeat(EDGES, len(EDGES)), rng.integers(-(2**31), 2**31, 20000),
                        rng.integers(-5000, 5000, 5000)])
    b = np.concatenate([np.tile(EDGES, len(EDGES)), rng.integers(-(2**31), 2**31, 20000),
                        rng.integers(2**30, 2**31, 5000)])
    e = rng.integers(0, 2**31, a.size)
    e[: len(EDGES) ** 2] = np.arange(len(EDGES) ** 2) * 7
    records = np.stack([a, b, e], axis=1).astype(np.int32)
    r = subprocess.run([str(exe)], input=records.tobytes(), capture_output=True, check=True)
    got = np.frombuffer(r.stdout, dtype=np.int64).reshape(-1, 5)
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    shift = np.minimum(e % 62 - 31, 30)
    np.testing.assert_array_equal(got[:, 0], fp.saturating_rounding_doubling_high_mul(a64, b64))
    np.testing.assert_array_equal(got[:, 1], fp.rounding_divide_by_pot(a64, e & 31))
    np.testing.assert_array_equal(got[:, 2], fp.multiply_by_quantized_multiplier(a64, b64, shift))
    np.testing.assert_array_equal(got[:, 3], fp.multiply_by_quantized_multiplier_single(a64, b64, shift))
    np.testing.assert_array_equal(got[:, 4], np.clip(a64 + e % 256 - 128, -128, 127))  # no int32 overflow
    assert (got[:, 0] == 2**31 - 1).any()  # the INT32_MIN * INT32_MIN saturation was exercised
