"""SUM: int8, one or several axes, negative and duplicate axes, keep_dims both ways, equal and different
quantization, saturation, zero points at the range ends, and the refusals.

TFLite Micro runs int8 SUM as reference_ops::QuantizedMeanOrSum with compute_sum (MEAN without the
1/count fold). LiteRT's BUILTIN_REF kernel (2.3) reads the int8 codes as uint8 codes; where every code
is in 0..127 and every output too, the two agree, and those input sets also run against LiteRT.
"""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, compare, save
from ._targets import check_targets, targets
from .test_mean import mean_model

VALID_ATTRS = [{"axes": (1, 2), "input_offset": 3, "output_offset": -5, "count": 35, "multiplier": 1 << 30,
                "shift": -3}]

CASES = {  # shape, axes, keep, quantization (s_in, zp_in, s_out, zp_out)
    "hw_keep": ((1, 5, 7, 6), [1, 2], True, (0.05, -3, 0.5, 5)),
    "hw_nokeep": ((1, 5, 7, 6), [1, 2], False, (0.05, -3, 0.7, -2)),
    "last_axis": ((2, 4, 3, 5), [-1], False, (0.02, 10, 0.06, 0)),
    "negative_axes_keep": ((2, 4, 3, 5), [-3, -1], True, (0.02, 10, 0.2, 3)),
    "first_axis_keep": ((3, 4, 5), [0], True, (0.1, 0, 0.2, 0)),
    "three_axes": ((2, 4, 3, 5), [3, 1, 2], False, (0.01, -128, 0.5, -128)),
    "outer_and_inner": ((2, 4, 3, 5), [0, 3], False, (0.03, 7, 0.2, 1)),
    "all_axes": ((2, 3, 4), [0, 1, 2], False, (0.01, 127, 0.5, 0)),
    "duplicate_negative": ((2, 6, 5), [1, -2], True, (0.05, -3, 0.2, 4)),
    "same_quant": ((2, 6, 5), [2], False, (0.05, -3, 0.05, -3)),
    "saturates": ((1, 6, 6, 4), [1, 2], True, (0.5, 0, 0.5, 0)),
    "zp_127_out_127": ((1, 4, 4, 3), [1], False, (0.02, 127, 0.1, 127)),  # real values <= 0 in and out
    "zp_m128_out_m128": ((1, 4, 4, 3), [2], True, (0.02, -128, 0.1, -128)),  # real values >= 0 in and out
    "rank5": ((2, 3, 2, 4, 5), [1, 3], False, (0.02, 1, 0.1, -1)),
    "count_1": ((1, 1, 1, 8), [1, 2], True, (0.05, -3, 0.04, 2)),
    "rank2": ((7, 9), [0], False, (0.02, 0, 0.05, 0)),
}


def case(name: str, seed: int = 3) -> Case:
    shape, axes, keep, (s_in, zp_in, s_out, zp_out) = CASES[name]
    m, x, y = mean_model(shape, axes, keep, s_in=s_in, zp_in=zp_in, s_out=s_out, zp_out=zp_out, opname="SUM")
    return Case(m, [x], [y], n=6, seed=seed)


@pytest.mark.parametrize("name", list(CASES))
def test_sum_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("sum"))
def test_sum_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_sum_matches_litert_on_non_negative_codes(tmp_path):
    """Codes 0..127 and zero points 0, where LiteRT's uint8 reading of int8 codes cannot show."""
    m, x, y = mean_model((2, 5, 6), [1], False, s_in=0.01, zp_in=0, s_out=0.1, zp_out=0, opname="SUM")
    rng = np.random.default_rng(9)
    sets = [[rng.integers(0, 128, size=(2, 5, 6)).astype(np.int8)] for _ in range(4)]
    out = compare(save(m, tmp_path, [x], [y]), sets, "tflite")
    assert np.unique(out).size > 5


def test_litert_reference_sum_reads_int8_as_uint8(tmp_path):
    """Why the golden tests use TFLite Micro: LiteRT's BUILTIN_REF SUM sums the code -10 as 246 (its uint8
    reading). If LiteRT fixes it, this fails, and LiteRT should join the golden tests."""
    from dmxgen.goldens import run_golden

    m, x, y = mean_model((1, 5, 1), [1], False, s_in=0.05, zp_in=0, s_out=0.5, zp_out=0, opname="SUM")
    path = save(m, tmp_path, [x], [y])
    v = np.array([-10, 0, 0, 0, 0], np.int8).reshape(1, 5, 1)
    litert, tflm = (int(run_golden(path, [v], g, isolate=True)[0].reshape(-1)[0]) for g in ("tflite", "tflm"))
    assert tflm == -1  # -10 * 0.05 / 0.5, the sum's value
    assert litert == 25  # 246 * 0.05 / 0.5 rounded: the uint8 reading


def test_sum_refuses_float32(tmp_path):
    m, x, y = mean_model((1, 4, 4), [1], True, dtype="float32", opname="SUM")
    with pytest.raises(DmxError, match=r"SUM of float32 -> float32 is not supported \(int8 only\)"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_sum_refuses_an_axis_outside_the_input(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", (1, 4, 4), "int8", scale=0.05, zero_point=0)
    a = m.tensor("axes", [1], "int32", data=[3])
    y = m.tensor("y", (1, 4, 4), "int8", scale=0.05, zero_point=0)
    m.op("SUM", [x, a], [y], keepDims=True)
    with pytest.raises(DmxError, match=r"reduction axis 3 is outside \[-3, 3\) for a 3-D input"):
        load_tflite(save(m, tmp_path, [x], [y]))


@pytest.mark.parametrize("key, value, message", [
    ("shift", 31, r"shift 31 is outside -31\.\.30"),
    ("input_offset", 129, r"input_offset 129 is not minus an int8 zero point"),
    ("count", 7, r"count 7 is not the number of values reduced"),
])
def test_sum_spec_refuses_what_would_overflow(tmp_path, key, value, message):
    m, x, y = mean_model((1, 4, 4), [1], True, opname="SUM")
    g = load_tflite(save(m, tmp_path, [x], [y]))
    g.ops[0].attrs[key] = value
    with pytest.raises(DmxError, match=message):
        g.validate()
