"""L2_NORMALIZATION: int8 over the last axis, ranks 1 to 4, zero points at the range ends, rows of one
value, all-zero rows (the inverse square root of 0 and 1), long rows (the bit-pair normalisation), and
the refusals (the output grid TFLite requires, fused activations, int16, rank 5)."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.ops.l2_norm import inv_sqrt_multiplier_exp
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets

VALID_ATTRS = [{"input_offset": 3}]


def l2_model(shape, *, s_in=0.05, zp_in=-3, s_out=1 / 128, zp_out=0, dtype="int8", act="NONE"):
    m = ModelBuilder()
    x = m.tensor("x", shape, dtype, scale=s_in, zero_point=zp_in)
    y = m.tensor("y", shape, dtype, scale=s_out, zero_point=zp_out)
    m.op("L2_NORMALIZATION", [x], [y], fusedActivationFunction=act)
    return m, x, y


CASES = {  # shape, input zero point
    "rank2": ((4, 16), -3),
    "rank3": ((2, 3, 8), 5),
    "rank4": ((1, 2, 2, 5), 0),
    "rank1": ((12,), 7),
    "zp_m128": ((3, 6), -128),
    "zp_127": ((3, 6), 127),
    "depth_1": ((5, 1), 0),  # every output is +-1 (saturated to 127) or 0
    "depth_2": ((6, 2), 0),
    "long_rows": ((2, 1000), 10),  # sums of squares above 2^29: the divide-by-4 step
}
# rows of all zero point (sum 0), one +-1 away (sum 1), and two values at the ends of the range
EXTRA_ROWS = [0, 1, -1, 127, -128]


def case(name: str) -> Case:
    shape, zp = CASES[name]
    m, x, y = l2_model(shape, zp_in=zp)
    extra = [[np.clip(np.full(shape, zp + d), -128, 127).astype(np.int8)] for d in EXTRA_ROWS]
    return Case(m, [x], [y], n=6, seed=21, extra=extra)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_l2_norm(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("l2_norm"))
def test_l2_norm_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_inv_sqrt_of_squares_is_close_to_the_float_one():
    """The integer inverse square root, as multiplier * 2^(shift - 31), within 1e-5 of 1/sqrt(acc)."""
    acc = np.array([2, 3, 10, 255 * 255, 1 << 28, (1 << 29) + 7, 2**31 - 1], np.int64)
    mult, shift = inv_sqrt_multiplier_exp(acc)
    got = mult.astype(np.float64) * 2.0 ** (shift.astype(np.float64) - 31)
    assert np.allclose(got, 1 / np.sqrt(acc), rtol=1e-5)


@pytest.mark.parametrize("kw, message", [
    ({"s_out": 1 / 64}, r"L2_NORMALIZATION output 'y' is quantized with scale 0\.015625 and zero point 0; "
                        r"TFLite requires scale 1/128 and zero point 0"),
    ({"zp_out": 1}, r"TFLite requires scale 1/128 and zero point 0"),
    ({"act": "RELU"}, r"L2_NORMALIZATION with fused activation RELU is not supported"),
    ({"dtype": "int16", "zp_in": 0}, r"tensor 'x' is int16; only int8 is supported for this operator"),
])
def test_l2_norm_refusals(tmp_path, kw, message):
    m, x, y = l2_model((2, 4), **kw)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_l2_norm_refuses_rank5(tmp_path):
    m, x, y = l2_model((1, 2, 1, 2, 3))
    with pytest.raises(DmxError, match=r"L2_NORMALIZATION of a 5-D input is not supported \(at most 4-D"):
        load_tflite(save(m, tmp_path, [x], [y]))
