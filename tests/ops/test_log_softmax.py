"""LOG_SOFTMAX: int8 over the last axis, input scales from tiny (every difference inside the radius) to
large (most outputs -128), zero points at the range ends, rows of one value, long rows, and the refusals
(the output grid TFLite requires, input scales it cannot prepare, int16)."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.ops.log_softmax import log_of_sum
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets

VALID_ATTRS = [{"input_multiplier": 1717986918, "input_left_shift": 23, "reverse_multiplier": 1342177280,
                "reverse_right_shift": 22, "diff_min": -248}]


def log_softmax_model(shape, *, s_in=0.05, zp_in=-3, s_out=16 / 256, zp_out=127, dtype="int8"):
    m = ModelBuilder()
    x = m.tensor("x", shape, dtype, scale=s_in, zero_point=zp_in)
    y = m.tensor("y", shape, dtype, scale=s_out, zero_point=zp_out)
    m.op("LOG_SOFTMAX", [x], [y])
    return m, x, y


CASES = {  # shape, input scale, input zero point
    "rank2": ((4, 16), 0.05, -3),
    "rank3": ((2, 3, 8), 0.1, 5),
    "rank4": ((1, 2, 2, 5), 0.02, 0),
    "rank1": ((10,), 0.2, 0),
    "zp_m128": ((3, 6), 0.05, -128),
    "zp_127": ((3, 6), 0.05, 127),
    "tiny_scale": ((3, 10), 0.001, 0),  # every output near log(1/10)
    "large_scale": ((3, 10), 5.0, 0),  # most differences beyond the radius: -128
    "scale_1": ((2, 12), 1.0, 0),
    "depth_1": ((5, 1), 0.1, 0),  # log(1) = 0: every output 127
    "long_rows": ((2, 1000), 0.3, 10),
}


def case(name: str) -> Case:
    shape, s, zp = CASES[name]
    m, x, y = log_softmax_model(shape, s_in=s, zp_in=zp)
    ramp = [np.resize(np.arange(-128, 128, 7), shape).astype(np.int8)]  # many distinct differences in a row
    return Case(m, [x], [y], n=6, seed=31, extra=[ramp])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_log_softmax(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=1 if name == "depth_1" else 3)


@pytest.mark.parametrize("target", targets("log_softmax"))
def test_log_softmax_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_log_of_sum_is_close_to_the_float_log():
    """The Q5.26 log of Q12.19 sums from 1 to 4095, within 2^-20 of log."""
    z = np.array([1.0, 1.5, 2.0, 10.0, 100.5, 4095.0])
    got = log_of_sum(np.round(z * 2**19).astype(np.int64)) / 2**26
    assert np.allclose(got, np.log(z), atol=2**-20)


@pytest.mark.parametrize("kw, message", [
    ({"s_out": 1 / 16}, None),  # 16/256 itself: accepted
    ({"s_out": 1 / 256, "zp_out": -128}, r"LOG_SOFTMAX output 'y' is quantized with scale 0\.00390625 and zero "
                                         r"point -128; TFLite requires scale 16/256 and zero point 127"),
    ({"zp_out": 0}, r"TFLite requires scale 16/256 and zero point 127"),
    ({"s_in": 1e-9}, r"LOG_SOFTMAX input scale 1e-09 is below 2\^-26, which TFLite cannot prepare"),
    ({"dtype": "int16", "zp_in": 0, "zp_out": 0}, r"tensor 'x' is int16; only int8 is supported for this operator"),
])
def test_log_softmax_refusals(tmp_path, kw, message):
    m, x, y = log_softmax_model((2, 4), **kw)
    path = save(m, tmp_path, [x], [y])
    if message is None:
        assert load_tflite(path).ops[0].kind == "log_softmax"
        return
    with pytest.raises(DmxError, match=message):
        load_tflite(path)


def test_log_softmax_spec_refuses_rows_whose_sum_of_exps_can_wrap(tmp_path):
    m, x, y = log_softmax_model((1, 4096))
    with pytest.raises(DmxError, match=r"rows of 4096 values can overflow the Q12 sum of exps \(at most 4095\)"):
        load_tflite(save(m, tmp_path, [x], [y])).validate()
