"""The HLS kernels' fixed-point C++ (templates/hls/kernels) against dmxgen/graph/fixedpoint.py.

hls/check/fixedpoint_check.cpp calls the C++ routines on values it reads; this
test feeds it edge values (INT32_MIN, saturation, ties) and random ones and
demands the Python results.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dmxgen.graph import fixedpoint as fp

ROOT = Path(__file__).resolve().parents[2]
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EDGE = [I32_MIN, I32_MIN + 1, -(2**30), -65536, -257, -3, -2, -1, 0, 1, 2, 3, 255, 65535, 2**30, I32_MAX - 1, I32_MAX]


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    exe = tmp_path_factory.mktemp("fixedpoint") / "fixedpoint_check"
    subprocess.run(["g++", "-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    "-I", str(ROOT / "templates" / "hls" / "kernels"), "-I", str(ROOT / "templates" / "common"),
                    str(ROOT / "hls" / "check" / "fixedpoint_check.cpp"), "-o", str(exe)], check=True)
    return exe


def run(checker: Path, calls: list[tuple]) -> list[int]:
    text = "".join(f"{c[0]} {' '.join(str(int(v)) for v in (list(c[1:]) + [0, 0])[:3])}\n" for c in calls)
    r = subprocess.run([str(checker)], input=text, capture_output=True, text=True, check=True)
    return [int(v) for v in r.stdout.split()]


def test_doubling_high_mul_and_rounding_divide(checker):
    rng = np.random.default_rng(0)
    pairs = [(a, b) for a in EDGE for b in EDGE] + [tuple(v) for v in rng.integers(I32_MIN, I32_MAX, (300, 2))]
    got = run(checker, [("srdhm", a, b) for a, b in pairs])
    assert got == [int(fp.saturating_rounding_doubling_high_mul(a, b)) for a, b in pairs]
    divs = [(x, e) for x in EDGE for e in (0, 1, 2, 5, 12, 30, 31, 34)]
    got = run(checker, [("rdbpot", x, e) for x, e in divs])
    assert got == [int(fp.rounding_divide_by_pot(x, e)) for x, e in divs]


@pytest.mark.parametrize("rounding", ["mbqm", "mbqm_single"])
def test_requantization_roundings(checker, rounding):
    rng = np.random.default_rng(1)
    mults = [1 << 30, 1442659874, I32_MAX] + rng.integers(1 << 30, I32_MAX, 5).tolist()
    shifts = [-31, -20, -5, -1, 0, 1, 3] if rounding == "mbqm" else [-31, -20, -5, -1, 0, 1, 30]
    xs = EDGE + rng.integers(-(2**24), 2**24, 20).tolist() + [4215]
    calls = [(rounding, x, m, s) for x in xs for m in mults for s in shifts]
    python = fp.multiply_by_quantized_multiplier if rounding == "mbqm" else fp.multiply_by_quantized_multiplier_single
    assert run(checker, calls) == [int(python(x, m, s)) for _, x, m, s in calls]
    # the documented tie (docs/goldens.md): one rounding gives 88, two give 89
    assert run(checker, [(rounding, 4215, 1442659874, -5)]) == [88 if rounding == "mbqm_single" else 89]


def test_gemmlowp_softmax_helpers(checker):
    rng = np.random.default_rng(2)
    negatives = [0, -1, -2, I32_MIN, I32_MIN + 1, -(1 << 26), -(1 << 24), -(31 << 26)] + \
        rng.integers(-(31 << 26), 0, 300).tolist()
    got = run(checker, [("exp_on_negative_values", a) for a in negatives])
    assert got == [int(fp.exp_on_negative_values(a, 5)) for a in negatives]
    unit = [0, 1, I32_MAX, 1 << 30] + rng.integers(0, I32_MAX, 200).tolist()
    got = run(checker, [("one_over_one_plus_x", a) for a in unit])
    assert got == [int(fp._one_over_one_plus_x(a)) for a in unit]
    pots = [(x, e) for x in EDGE for e in (-31, -12, -1, 0, 1, 2, 5, 30)]
    got = run(checker, [("sat_mul_pot", x, e) for x, e in pots])
    assert got == [int(fp._sat_mul_pot(x, e)) for x, e in pots]
