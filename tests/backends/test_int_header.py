"""templates/common/dmx_int.h, the one integer core of the C and HLS kernels, equals graph/fixedpoint.py.

One harness calls every function of the header on the values it reads; it is compiled as C99 by
gcc, as C++ by g++, and as C++ through the HLS wrapper (dmx_fixedpoint.h, whose unroll pragma hook
then expands), each under ASan/UBSan, and all three must print the Python results for edge values
(INT32_MIN * INT32_MIN, every shift, ties of both signs) and random ones. The exports must carry
the header unchanged: the C folder beside kernels.h, the HLS folder in hls/kernels/.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dmxgen.backends.host import SANITIZE, WARNINGS
from dmxgen.graph import fixedpoint as fp
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "templates" / "common" / "dmx_int.h"
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EDGE = [I32_MIN, I32_MIN + 1, -(2**30), -65536, -257, -3, -2, -1, 0, 1, 2, 3, 255, 65535, 2**30, I32_MAX - 1,
        I32_MAX]

HARNESS = r"""
#include <stdio.h>
#include <string.h>
#ifdef VIA_HLS
#include "dmx_fixedpoint.h"
#else
#include "dmx_int.h"
#endif

int main(void)
{
    char fn[32];
    long long a, b, c;
    while (scanf("%31s %lld %lld %lld", fn, &a, &b, &c) == 4) {
        long long r = 0;
        if (!strcmp(fn, "wrap32")) r = dmx_wrap32((int64_t)a);
        else if (!strcmp(fn, "wrap_add")) r = dmx_wrap_add((int32_t)a, (int32_t)b);
        else if (!strcmp(fn, "srdhm")) r = dmx_srdhm((int32_t)a, (int32_t)b);
        else if (!strcmp(fn, "rdbpot")) r = dmx_rdbpot((int32_t)a, (int32_t)b);
        else if (!strcmp(fn, "rdbpot64")) r = dmx_rdbpot64((int64_t)a, (int32_t)b);
        else if (!strcmp(fn, "mbqm")) r = dmx_mbqm((int32_t)a, (int32_t)b, (int32_t)c);
        else if (!strcmp(fn, "mbqm_single")) r = dmx_mbqm_single((int32_t)a, (int32_t)b, (int32_t)c);
        else if (!strcmp(fn, "mbqm_away")) r = dmx_mbqm_away((int32_t)a, (int32_t)b, (int32_t)c);
        else if (!strcmp(fn, "mbqm_away64")) r = dmx_mbqm_away64((int64_t)a, (int32_t)b, (int32_t)c);
        else if (!strcmp(fn, "clamp64")) r = dmx_clamp64((int64_t)a, (int32_t)b, (int32_t)c);
        else if (!strcmp(fn, "offset_clamp")) r = dmx_offset_clamp((int32_t)a, (int32_t)b, -128, 127);
        else if (!strcmp(fn, "sat_mul_pot")) r = dmx_sat_mul_pot((int32_t)a, (int32_t)b);
        else if (!strcmp(fn, "exp_on_negative_values")) r = dmx_exp_on_negative_values((int32_t)a);
        else if (!strcmp(fn, "one_over_one_plus_x")) r = dmx_one_over_one_plus_x((int32_t)a);
        else if (!strcmp(fn, "clz32")) r = dmx_clz32((uint32_t)a);
        else {
            fprintf(stderr, "int_header: unknown function %s\n", fn);
            return 2;
        }
        printf("%lld\n", r);
    }
    return 0;
}
"""

BUILDS = {
    "c99": ["gcc", *WARNINGS, "-x", "c"],
    "c++": ["g++", "-std=c++14", "-Wall", "-Wextra", "-Werror", "-pedantic", "-x", "c++"],
    "c++ via dmx_fixedpoint.h": ["g++", "-std=c++14", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas", "-x",
                                 "c++", "-DVIA_HLS", "-I", str(ROOT / "templates" / "hls" / "kernels")],
}


@pytest.fixture(scope="module", params=list(BUILDS))
def harness(request, tmp_path_factory) -> Path:
    cmd = BUILDS[request.param]
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed")
    folder = tmp_path_factory.mktemp("int_header")
    src = folder / "harness.txt"  # the language comes from -x
    src.write_text(HARNESS)
    exe = folder / "harness"
    subprocess.run([*cmd, "-O2", *SANITIZE, "-I", str(HEADER.parent), str(src), "-o", str(exe)], check=True)
    return exe


def run(exe: Path, calls: list[tuple]) -> list[int]:
    text = "".join(f"{c[0]} {' '.join(str(int(v)) for v in (list(c[1:]) + [0, 0])[:3])}\n" for c in calls)
    r = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True)
    assert not r.stderr, r.stderr  # a sanitizer report fails the test even when the value is right
    return [int(v) for v in r.stdout.split()]


def ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def test_doubling_high_mul_saturates_and_matches(harness):
    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in EDGE for b in EDGE] + [tuple(v) for v in rng.integers(I32_MIN, I32_MAX, (500, 2))]
    got = run(harness, [("srdhm", a, b) for a, b in pairs])
    assert got == ints(fp.saturating_rounding_doubling_high_mul([a for a, _ in pairs], [b for _, b in pairs]))
    assert got[EDGE.index(I32_MIN) * len(EDGE) + EDGE.index(I32_MIN)] == I32_MAX  # the one saturating product


def test_rounding_divide_every_shift_and_ties_of_both_signs(harness):
    rng = np.random.default_rng(1)
    calls = []
    for e in range(32):
        half = 1 << e >> 1  # 2^(e-1): x = (2k + 1) * half lies exactly halfway for e >= 1
        ties = [k * 2 * half + half for k in (-3, -2, -1, 0, 1, 2)] if e else []
        xs = EDGE + ties + [t - 1 for t in ties] + [t + 1 for t in ties] + rng.integers(I32_MIN, I32_MAX, 20).tolist()
        calls += [("rdbpot", x, e) for x in xs if I32_MIN <= x <= I32_MAX]
    got = run(harness, calls)
    assert got == ints(fp.rounding_divide_by_pot([c[1] for c in calls], [c[2] for c in calls]))
    # the ties round away from zero: -1.5 -> -2, -0.5 -> -1, 0.5 -> 1, 1.5 -> 2
    assert run(harness, [("rdbpot", -3, 1), ("rdbpot", -1, 1), ("rdbpot", 1, 1), ("rdbpot", 3, 1)]) == [-2, -1, 1, 2]
    wide = [(x, e) for e in range(63) for x in (-(2**40) - 1, -(1 << e >> 1) if e else 0, 3 << 40, I32_MIN, I32_MAX)]
    got = run(harness, [("rdbpot64", x, e) for x, e in wide])
    assert got == ints(fp.rounding_divide_by_pot([x for x, _ in wide], [e for _, e in wide]))


@pytest.mark.parametrize("rounding", ["mbqm", "mbqm_single"])
def test_quantized_multiplier_every_shift(harness, rounding):
    rng = np.random.default_rng(2)
    mults = [1 << 30, 1442659874, I32_MAX] + rng.integers(1 << 30, I32_MAX, 3).tolist()
    shifts = range(-31, 32) if rounding == "mbqm" else range(-31, 31)  # one rounding needs 31 - shift >= 1
    xs = EDGE + rng.integers(-(2**24), 2**24, 6).tolist() + [4215]
    calls = [(rounding, x, m, s) for x in xs for m in mults for s in shifts]
    python = fp.multiply_by_quantized_multiplier if rounding == "mbqm" else fp.multiply_by_quantized_multiplier_single
    cols = list(zip(*calls))
    assert run(harness, calls) == ints(python(list(cols[1]), list(cols[2]), list(cols[3])))
    # the documented tie (docs/goldens.md): one rounding gives 88, two give 89
    assert run(harness, [(rounding, 4215, 1442659874, -5)]) == [88 if rounding == "mbqm_single" else 89]


def test_quantized_multiplier_away_every_shift(harness):
    """LiteRT's FC rounding (one rounding, ties away from zero), int32 and int64 accumulators, power-of-two
    multipliers (ties on every other odd x) included."""
    rng = np.random.default_rng(4)
    mults = [0, 1 << 30, 1442659874, I32_MAX] + rng.integers(1 << 30, I32_MAX, 2).tolist()
    xs = EDGE + [-6, -2, 2, 6, 4215] + rng.integers(-(2**24), 2**24, 6).tolist()
    calls = [("mbqm_away", x, m, s) for x in xs for m in mults for s in range(-31, 31)]
    wide = [-(2**47) + 1, -(2**40) - 2, -(2**33), 2**33 + 2, 2**47 - 1]
    calls += [("mbqm_away64", x, m, s) for x in xs + wide for m in mults for s in range(-31, 0)]
    cols = list(zip(*calls))
    assert run(harness, calls) == ints(fp.multiply_by_quantized_multiplier_away(list(cols[1]), list(cols[2]),
                                                                              list(cols[3])))
    # x = -2 times 2^30 * 2^-1 / 2^31 is -0.5: away gives -1, the half-up single rounding 0
    assert run(harness, [("mbqm_away", -2, 1 << 30, -1), ("mbqm_single", -2, 1 << 30, -1)]) == [-1, 0]


def test_clamps_and_wraps(harness):
    rng = np.random.default_rng(3)
    wide = EDGE + [-(2**40), 2**40, -(2**63), 2**63 - 1] + rng.integers(-(2**62), 2**62, 50).tolist()
    assert run(harness, [("wrap32", v) for v in wide]) == [((v + 2**31) % 2**32) - 2**31 for v in wide]
    pairs = [(a, b) for a in EDGE for b in EDGE]
    got = run(harness, [("wrap_add", a, b) for a, b in pairs])
    assert got == [((a + b + 2**31) % 2**32) - 2**31 for a, b in pairs]
    bounds = [(-128, 127), (-128, -128), (0, 6), (-32768, 32767)]
    calls = [("clamp64", v, lo, hi) for v in wide for lo, hi in bounds]
    assert run(harness, calls) == [min(max(v, lo), hi) for _, v, lo, hi in calls]
    offsets = [-128, -1, 0, 1, 127]  # v + offset would overflow int32 for the extreme v: the clamp comes first
    calls = [("offset_clamp", v, o) for v in EDGE for o in offsets]
    assert run(harness, calls) == [min(max(v + o, -128), 127) for _, v, o in calls]


def test_gemmlowp_softmax_core(harness):
    rng = np.random.default_rng(4)
    negatives = [0, -1, -2, I32_MIN, I32_MIN + 1, -(1 << 26), -(1 << 24), -(31 << 26)] + \
        rng.integers(-(31 << 26), 0, 300).tolist()
    got = run(harness, [("exp_on_negative_values", a) for a in negatives])
    assert got == ints(fp.exp_on_negative_values(negatives, 5))
    unit = [0, 1, I32_MAX, 1 << 30] + rng.integers(0, I32_MAX, 200).tolist()
    assert run(harness, [("one_over_one_plus_x", a) for a in unit]) == ints(fp._one_over_one_plus_x(unit))
    pots = [(x, e) for x in EDGE for e in range(-31, 32)]
    got = run(harness, [("sat_mul_pot", x, e) for x, e in pots])
    assert got == [int(fp._sat_mul_pot(x, e)) for x, e in pots]
    words = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF] + [1 << b for b in range(32)] + \
        rng.integers(0, 2**32, 50).tolist()
    assert run(harness, [("clz32", u) for u in words]) == [32 - int(u).bit_length() for u in words]


def _softmax_fc_model(path: Path) -> Path:
    """FC then gemmlowp-style int8 softmax: the C and HLS exports both need the integer core."""
    rng = np.random.default_rng(5)
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.05, zero_point=3)
    w = m.tensor("w", [4, 8], scale=0.01, zero_point=0, data=rng.integers(-127, 128, (4, 8)).astype(np.int8))
    y = m.tensor("y", [1, 4], scale=0.1, zero_point=-5)
    p = m.tensor("p", [1, 4], scale=1 / 256, zero_point=-128)
    m.op("FULLY_CONNECTED", [x, w, -1], [y], fusedActivationFunction="NONE")
    m.op("SOFTMAX", [y], [p], beta=1.0)
    return m.save(path, [x], [p])


def test_exports_carry_the_header_unchanged(tmp_path):
    model = _softmax_fc_model(tmp_path / "fc_softmax.tflite")
    out = tmp_path / "out"
    export(model, out, targets=("c", "hls"), source=model, semantics="tflm", fmt="dense")
    assert "dmx_softmax_gemmlowp_s8" in (out / "kernels.c").read_text()  # TFLM semantics: the integer softmax
    shared = HEADER.read_bytes()
    assert (out / "dmx_int.h").read_bytes() == shared
    assert '#include "dmx_int.h"' in (out / "kernels.h").read_text()
    assert (out / "hls" / "kernels" / "dmx_int.h").read_bytes() == shared
    assert '#include "dmx_int.h"' in (out / "hls" / "kernels" / "dmx_fixedpoint.h").read_text()
    # neither target keeps a private copy of the core
    for text in [(out / "kernels.c").read_text(), (out / "kernels.h").read_text()] + \
            [p.read_text() for p in (out / "hls" / "kernels").glob("*.h") if p.name != "dmx_int.h"]:
        assert "int32_t dmx_srdhm(" not in text and "dmx_exp_on_negative_values(int32_t" not in text
