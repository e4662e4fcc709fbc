"""graph/fixedpoint.py against a plain transcription of TFLite's C++ (one value at a time)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dmxgen.graph import fixedpoint as fp

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EDGE = [I32_MIN, I32_MIN + 1, -(2**30), -65536, -257, -3, -2, -1, 0, 1, 2, 3, 255, 65535, 2**30, I32_MAX - 1, I32_MAX]


def c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def srdhm_c(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap32(c_div(ab + nudge, 1 << 31))


def rdbpot_c(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def mbqm_c(x: int, m: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rdbpot_c(srdhm_c(wrap32(x * (1 << left)), m), right)


def test_srdhm_edges():
    a = np.array([x for x in EDGE for _ in EDGE], dtype=np.int64)
    b = np.array([y for _ in EDGE for y in EDGE], dtype=np.int64)
    got = fp.saturating_rounding_doubling_high_mul(a, b)
    want = [srdhm_c(int(x), int(y)) for x, y in zip(a, b)]
    assert got.tolist() == want
    assert int(fp.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN)) == I32_MAX  # the one saturating case


def test_rounding_divide_ties_away_from_zero():
    assert [int(fp.rounding_divide_by_pot(x, 1)) for x in (-3, -1, 1, 3, 5)] == [-2, -1, 1, 2, 3]
    assert int(fp.rounding_divide_by_pot(5, 2)) == 1       # 1.25
    assert int(fp.rounding_divide_by_pot(6, 2)) == 2       # 1.5 -> 2
    assert int(fp.rounding_divide_by_pot(-6, 2)) == -2     # -1.5 -> -2
    assert int(fp.rounding_divide_by_pot(-5, 2)) == -1     # -1.25 -> -1
    assert int(fp.rounding_divide_by_pot(I32_MIN, 31)) == -1


@pytest.mark.parametrize("shift", [-31, -20, -8, -1, 0, 1, 4, 10])
def test_mbqm_matches_c_on_edges(shift):
    mults = [0, 1, 1 << 30, 1518500250, I32_MAX]
    for m in mults:
        got = fp.multiply_by_quantized_multiplier(np.array(EDGE, dtype=np.int64), m, shift)
        assert got.tolist() == [mbqm_c(x, m, shift) for x in EDGE], (m, shift)


@settings(max_examples=400, deadline=None)
@given(st.integers(I32_MIN, I32_MAX), st.integers(0, I32_MAX), st.integers(-31, 7))
def test_mbqm_matches_c_random(x, m, shift):
    assert int(fp.multiply_by_quantized_multiplier(x, m, shift)) == mbqm_c(x, m, shift)


def test_single_rounding_differs_from_double_at_a_tie():
    # From ad01's second FULLY_CONNECTED: acc 4215, M=1442659874, shift -5 is 88.487...
    assert int(fp.multiply_by_quantized_multiplier_single(4215, 1442659874, -5)) == 88
    assert int(fp.multiply_by_quantized_multiplier(4215, 1442659874, -5)) == 89  # rounds 2831.5 then 88.5


def mbqm_away_c(x: int, m: int, shift: int) -> int:
    """LiteRT's FC requantization in exact integers: |x * m| / 2**(31 - shift) rounded half up, sign put back."""
    t = 31 - shift
    mag = (abs(x * m) + (1 << (t - 1))) >> t
    return -mag if x * m < 0 else mag


WIDE = EDGE + [-(2**47) + 1, -(2**40) - 1, -(2**32) - 1, -(2**32), 2**32, 2**32 + 1, 2**40 + 3, 2**47 - 1]


@pytest.mark.parametrize("shift", [-31, -20, -8, -2, -1, 0, 1, 4, 7])
def test_mbqm_away_matches_exact_model_on_edges(shift):
    """int32 edges and int64 accumulators (16x8) up to 2**47, where the int64 split must hold."""
    for m in [0, 1, 1 << 30, 1518500250, I32_MAX]:
        # t = 31 - shift < 32 cuts |x| at 2**32 (any output saturates beyond): wide x only with t >= 32
        xs = WIDE if shift <= -1 else EDGE
        got = fp.multiply_by_quantized_multiplier_away(np.array(xs, dtype=np.int64), m, shift)
        assert got.tolist() == [mbqm_away_c(x, m, shift) for x in xs], (m, shift)


@settings(max_examples=400, deadline=None)
@given(st.integers(-(2**47), 2**47 - 1), st.integers(0, I32_MAX), st.integers(-31, -1))
def test_mbqm_away_matches_exact_model_random(x, m, shift):
    assert int(fp.multiply_by_quantized_multiplier_away(x, m, shift)) == mbqm_away_c(x, m, shift)


def test_away_differs_from_single_on_negative_ties_only():
    """Power-of-two multiplier 2**30 with shift -1: x / 4, ties at x = 4k + 2."""
    xs = np.arange(-10, 11, dtype=np.int64)
    away = fp.multiply_by_quantized_multiplier_away(xs, 1 << 30, -1)
    single = fp.multiply_by_quantized_multiplier_single(xs, 1 << 30, -1)
    assert away.tolist() == [mbqm_away_c(int(x), 1 << 30, -1) for x in xs]
    assert xs[away != single].tolist() == [-10, -6, -2]  # -2.5 -> -3, -1.5 -> -2, -0.5 -> -1
    assert int(fp.multiply_by_quantized_multiplier_away(-2, 1 << 30, -1)) == -1
    assert int(fp.multiply_by_quantized_multiplier_single(-2, 1 << 30, -1)) == 0


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)), (0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.25, (1 << 30, -1)),
    (2.0**-40, (0, 0)),  # below 2**-31: flushed to zero as TFLite does
])
def test_quantize_multiplier_exact_values(real, expected):
    assert fp.quantize_multiplier(real) == expected


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-9, max_value=1e3, allow_nan=False))
def test_quantize_multiplier_represents_real(real):
    m, s = fp.quantize_multiplier(real)
    assert (1 << 30) <= m <= I32_MAX
    assert math.isclose(m * 2.0 ** (s - 31), real, rel_tol=2**-30)


def test_quantize_multiplier_rounds_up_to_next_power():
    # q*2**31 rounds to 2**31 exactly: TFLite halves it and bumps the shift.
    real = 1.0 - 2.0**-33
    assert fp.quantize_multiplier(real) == (1 << 30, 1)


def test_gemmlowp_exp_matches_float_exp():
    # exp_on_negative_values with 5 integer bits over [-31, 0]
    xs = np.linspace(-31, 0, 2001)
    raw = np.round(xs * 2**26).astype(np.int64)
    got = fp.exp_on_negative_values(raw, 5) / 2**31
    assert np.allclose(got, np.exp(raw / 2**26), atol=2e-7)
