"""Property tests (hypothesis): fixedpoint.py against exact rational arithmetic, and the TFLite
frontend's field validators against the rule each one states (issue 18).

tests/test_fixedpoint.py compares fixedpoint.py with a line-by-line transcription of TFLite's
C++; here each function is held to the mathematical value it approximates, with Fractions,
so a transcription error shared by both would still be caught.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from dmxgen.errors import DmxError
from dmxgen.frontends import tflite_checks as checks
from dmxgen.frontends.tflite import _padding
from dmxgen.graph import fixedpoint as fp
from dmxgen.ops._checks import conv_out

FAST = settings(max_examples=150, deadline=None)
I32 = st.integers(-(2**31), 2**31 - 1)


def floor_half_up(q: Fraction) -> int:
    """floor(q + 1/2): round to nearest, ties toward +infinity."""
    return math.floor(q + Fraction(1, 2))


def half_away(q: Fraction) -> int:
    """Round to nearest, ties away from zero."""
    return int(math.copysign(floor_half_up(abs(q)), q)) if q else 0


# -- fixedpoint ------------------------------------------------------------------------------

@FAST
@given(st.floats(min_value=2.0**-31, max_value=2.0**30 * (1 - 2.0**-30), allow_subnormal=False))
def test_quantize_multiplier_is_the_nearest_q31_value(real):
    """multiplier in [2**30, 2**31), and multiplier * 2**(shift-31) within half a Q31 step of real."""
    m, shift = fp.quantize_multiplier(real)
    assert 2**30 <= m < 2**31 and -31 <= shift <= fp.MAX_SHIFT
    step = Fraction(2) ** (shift - 31)
    assert abs(m * step - Fraction(real)) <= step / 2


@FAST
@given(st.floats(min_value=0, max_value=2.0**-33, allow_subnormal=True))
def test_quantize_multiplier_flushes_what_needs_a_right_shift_over_31(real):
    assert fp.quantize_multiplier(real) == (0, 0)


@FAST
@given(st.floats(min_value=2.0**fp.MAX_SHIFT, max_value=3.4e38))
def test_quantize_multiplier_refuses_left_shifts_the_kernels_lack(real):
    with pytest.raises(DmxError, match="left shift"):
        fp.quantize_multiplier(real)


@FAST
@given(I32, I32)
def test_saturating_rounding_doubling_high_mul_is_a_times_b_over_2_31_rounded(a, b):
    """TFLite's nudge then truncation is round-to-nearest with ties toward +inf, and saturates
    only at INT32_MIN * INT32_MIN (the one product whose quotient leaves int32)."""
    got = int(fp.saturating_rounding_doubling_high_mul(a, b))
    if a == b == -(2**31):
        assert got == 2**31 - 1
    else:
        want = Fraction(a * b, 2**31)
        # ties: the nudge makes negative halves go toward zero, positive halves away from it
        assert got == floor_half_up(want)


@FAST
@given(I32, st.integers(0, 31))
def test_rounding_divide_by_pot_rounds_half_away_from_zero(x, exponent):
    assert int(fp.rounding_divide_by_pot(x, exponent)) == half_away(Fraction(x, 2**exponent))


@FAST
@given(st.integers(-(2**24), 2**24), st.integers(2**30, 2**31 - 1), st.integers(-31, 0))
def test_single_rounding_is_one_round_half_up_of_the_exact_product(x, m, shift):
    got = int(fp.multiply_by_quantized_multiplier_single(x, m, shift))
    assert got == floor_half_up(Fraction(x * m, 2 ** (31 - shift)))


@FAST
@given(st.integers(-(2**24), 2**24), st.integers(2**30, 2**31 - 1), st.integers(-31, 0))
def test_double_rounding_is_within_one_of_the_exact_product(x, m, shift):
    """Two roundings (high mul, then divide by a power of two) stay within 1 of the exact value."""
    got = int(fp.multiply_by_quantized_multiplier(x, m, shift))
    assert abs(got - Fraction(x * m, 2 ** (31 - shift))) <= 1


@FAST
@given(st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
       st.floats(min_value=2.0**-14, max_value=16.0, width=32), st.integers(-128, 127))
def test_quantize_float_is_the_rounded_clamped_quotient(x, scale, zero_point):
    """Beyond int32 the conversion gives INT32_MIN (x86, as LiteRT on the host), then the zero point
    is added with int32 wrap-around."""
    q = np.float32(x) / np.float32(scale)  # float32 division, as TFLite's AffineQuantize
    r = half_away(Fraction(float(q)))
    r = r if -(2**31) <= r < 2**31 else -(2**31)
    want = min(127, max(-128, (r + zero_point + 2**31) % 2**32 - 2**31))
    assert int(fp.quantize_float(np.float32(x), scale, zero_point)) == want


# -- the frontend's validators ---------------------------------------------------------------

@FAST
@given(st.sampled_from(sorted(checks.ZERO_POINT_RANGES)), st.integers(-(2**63), 2**63 - 1))
def test_zero_point_accepted_exactly_inside_the_types_range(dtype, zp):
    lo, hi = checks.ZERO_POINT_RANGES[dtype]
    args = ("t", dtype, (4,), np.array([0.5], np.float32), np.array([zp], np.int64), None)
    if lo <= zp <= hi:
        checks.check_quantization(*args)
    else:
        with pytest.raises(DmxError, match=f"zero point {zp}"):
            checks.check_quantization(*args)


@FAST
@given(st.floats(width=32, allow_subnormal=True))
def test_scale_accepted_exactly_when_finite_and_positive(scale):
    args = ("t", "int8", (4,), np.array([scale], np.float32), np.array([0], np.int64), None)
    if math.isfinite(scale) and scale > 0:
        checks.check_quantization(*args)
    else:
        with pytest.raises(DmxError, match="finite and positive"):
            checks.check_quantization(*args)


@FAST
@given(st.lists(st.integers(-3, 2**20), min_size=0, max_size=5), st.sampled_from(["int8", "int32", "float32"]))
def test_shape_accepted_exactly_when_known_and_small_enough(shape, dtype):
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if all(d >= 0 for d in shape) and nbytes <= checks.MAX_TENSOR_BYTES:
        checks.check_shape("t", tuple(shape), dtype)
    else:
        with pytest.raises(DmxError, match="tensor 't'"):
            checks.check_shape("t", tuple(shape), dtype)


@FAST
@given(st.integers(-(2**31), 2**31 - 1))
def test_padding_enum_and_window_sizes(value):
    if value in (0, 1):
        assert checks.check_padding(value) == ("SAME", "VALID")[value]
    else:
        with pytest.raises(DmxError, match=f"padding {value} is not one TFLite defines"):
            checks.check_padding(value)
    if 1 <= value <= checks.MAX_WINDOW:
        checks.check_window("stride", value)
    else:
        with pytest.raises(DmxError, match=f"stride {value} is outside"):
            checks.check_window("stride", value)


@FAST
@given(st.integers(1, 300), st.integers(1, 12), st.integers(1, 6), st.integers(1, 6), st.sampled_from([0, 1]))
def test_frontend_padding_agrees_with_the_op_shape_rule(in_size, filt, stride, dilation, padding):
    """The pads the frontend derives (TFLite's ComputePaddingHeightWidth) give back, through the
    op kinds' own shape rule, the output size the frontend computed."""
    out, before, after = _padding(padding, in_size, filt, stride, dilation)
    assume(out >= 1)
    assert before >= 0 and after >= 0 and after - before in (0, 1)
    assert conv_out(in_size, filt, stride, dilation, before, after) == out
    if padding == 0:  # SAME
        assert out == -(-in_size // stride)


@FAST
@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 9), st.integers(1, 2**16), st.integers(1, 16))
def test_window_scratch_covers_the_padded_input_and_grows_with_dilation(h, w, k, dilation, channels):
    out, pt, pb = _padding(0, h, k, 1, dilation)
    _, pl, pr = _padding(0, w, k, 1, dilation)
    attrs = {"stride": (1, 1), "dilation": (dilation, dilation), "pad": (pt, pl, pb, pr)}
    scratch = checks.window_scratch((1, h, w, channels), (1, h, w, channels), k, k, channels, attrs)
    assert scratch >= (h + pt + pb) * (w + pl + pr) * channels * 4
    attrs2 = dict(attrs, dilation=(dilation + 1, dilation + 1))
    _, pt2, pb2 = _padding(0, h, k, 1, dilation + 1)
    _, pl2, pr2 = _padding(0, w, k, 1, dilation + 1)
    attrs2["pad"] = (pt2, pl2, pb2, pr2)
    assert checks.window_scratch((1, h, w, channels), (1, h, w, channels), k, k, channels, attrs2) >= scratch


@FAST
@given(st.integers(0, 2**40), st.integers(0, 2**40))
def test_work_accepted_exactly_within_both_limits(scratch, macs):
    if scratch <= checks.MAX_SCRATCH_BYTES and macs <= checks.MAX_LAYER_MACS:
        checks.check_work(scratch, macs)
    else:
        with pytest.raises(DmxError, match="scratch memory" if scratch > checks.MAX_SCRATCH_BYTES else "accumulates"):
            checks.check_work(scratch, macs)
