"""SQUARED_DIFFERENCE: int8 with broadcasting (both ways, rank differences, constant operands), scales,
zero points at the range ends, saturation, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets

VALID_ATTRS = [{"input1_offset": 3, "input2_offset": -7, "output_offset": -128, "left_shift": 7,
                "input1_multiplier": 1 << 30, "input1_shift": -1, "input2_multiplier": 1288490189,
                "input2_shift": -1, "output_multiplier": 1 << 30, "output_shift": -12}]


def sqdiff_model(shape_a, shape_b, *, s=(0.05, 0.05, 0.2), zp=(-3, 7, -128), const=None, seed=0):
    """(a - b)^2 -> the broadcast output; `const` "a" or "b" makes that operand a constant."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()

    def operand(name, shape, k):
        data = rng.integers(-128, 128, size=shape).astype(np.int8) if const == name else None
        return m.tensor(name, shape, scale=s[k], zero_point=zp[k], data=data)

    a, b = operand("a", shape_a, 0), operand("b", shape_b, 1)
    y = m.tensor("y", list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b))), scale=s[2], zero_point=zp[2])
    m.op("SQUARED_DIFFERENCE", [a, b], [y])
    return m, [t for t, name in ((a, "a"), (b, "b")) if name != const], y


CASES = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
    "same_scales": ((2, 3, 5), (2, 3, 5), {"s": (0.05, 0.05, 0.4), "zp": (0, 0, -128)}),
    "scale_ratio_100": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.001, 0.1, 0.5)}),
    "scale_ratio_100_swapped": ((2, 3, 5), (2, 3, 5), {"s": (0.1, 0.001, 0.5)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
    "broadcast_first_operand": ((1, 1, 1, 3), (1, 4, 4, 3), {}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
    "broadcast_rank_differs": ((1, 4, 4, 3), (3,), {}),
    "rank5": ((2, 3, 1, 4, 5), (2, 1, 1, 4, 5), {}),
    "const_scalar": ((1, 4, 4, 3), (), {"const": "b"}),
    "const_first": ((), (1, 4, 4, 3), {"const": "a"}),
    "zp_ends_in": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (-128, 127, -128), "s": (0.02, 0.02, 0.1)}),
    "zp_in_127": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (127, 127, -128), "s": (0.02, 0.03, 0.05)}),
    "zp_out_100": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (5, -5, 100), "s": (0.02, 0.03, 0.002)}),  # near the top end
    "zp_out_0": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (0, 0, 0), "s": (0.05, 0.04, 0.05)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.1, 0.05)}),
    "output_scale_large": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.2, 4.0), "zp": (5, -5, -100)}),
    "left_shifted_output": ((1, 2, 3, 4), (1, 2, 3, 4), {"s": (0.01, 0.01, 1e-6), "zp": (0, 0, -128)}),
    "scales_tiny": ((1, 2, 3, 4), (1, 2, 3, 4), {"s": (1e-5, 3e-6, 1e-9), "zp": (1, -2, -128)}),
}


def case(name: str) -> Case:
    shape_a, shape_b, kw = CASES[name]
    m, ins, y = sqdiff_model(shape_a, shape_b, seed=len(name), **kw)
    return Case(m, ins, [y], n=6, seed=11)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_squared_difference(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=2)


@pytest.mark.parametrize("target", targets("squared_difference"))
def test_squared_difference_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_squared_difference_saturates(tmp_path):
    out = check_case(case("saturate"), tmp_path)
    assert (out == 127).mean() > 0.2 and (out == -128).any()


def test_squared_difference_refuses_an_output_scale_that_overflows(tmp_path):
    m, ins, y = sqdiff_model((1, 4), (1, 4), s=(1.0, 1.0, 1e-7), zp=(0, 0, 0))
    with pytest.raises(DmxError, match=r"output_shift \d+ overflows int32 on the largest square \d+"):
        load_tflite(save(m, tmp_path, ins, [y]))


def test_squared_difference_refuses_int16(tmp_path):
    m = ModelBuilder()
    a, b = (m.tensor(n, (1, 4), "int16", scale=0.1, zero_point=0) for n in "ab")
    y = m.tensor("y", (1, 4), "int16", scale=0.1, zero_point=0)
    m.op("SQUARED_DIFFERENCE", [a, b], [y])
    with pytest.raises(DmxError, match=r"tensor 'a' is int16; only int8 is supported for this operator"):
        load_tflite(save(m, tmp_path, [a, b], [y]))


def test_squared_difference_refuses_shapes_that_do_not_broadcast(tmp_path):
    m = ModelBuilder()
    a, b = m.tensor("a", (1, 4), scale=0.1, zero_point=0), m.tensor("b", (1, 3), scale=0.1, zero_point=0)
    y = m.tensor("y", (1, 4), scale=0.1, zero_point=0)
    m.op("SQUARED_DIFFERENCE", [a, b], [y])
    with pytest.raises(DmxError, match=r"input shapes \[1, 4\] and \[1, 3\] do not broadcast"):
        load_tflite(save(m, tmp_path, [a, b], [y]))


@pytest.mark.parametrize("key, value, message", [
    ("input1_shift", 1, r"input1_shift 1 is a left shift; TFLite only rescales the inputs down"),
    ("left_shift", 8, r"left_shift 8 is outside 0\.\.7"),
    ("input2_offset", 129, r"input2_offset 129 is not minus an int8 zero point"),
])
def test_squared_difference_spec_refuses_what_would_overflow(tmp_path, key, value, message):
    m, ins, y = sqdiff_model((1, 4), (1, 4))
    g = load_tflite(save(m, tmp_path, ins, [y]))
    g.ops[0].attrs[key] = value
    with pytest.raises(DmxError, match=message):
        g.validate()
