"""REDUCE_MIN: int8, one or several axes, negative and duplicate axes, keep_dims, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite

from ._harness import Case, check, check_case, save
from ._targets import check_targets, targets
from .test_mean import mean_model

VALID_ATTRS = [{"axes": (1, 2)}, {"axes": np.array([0], np.int32)}]

CASES = {
    "hw_keep": ((1, 5, 7, 6), [1, 2], True),  # a global min pool
    "hw_nokeep": ((1, 5, 7, 6), [1, 2], False),
    "last_axis": ((2, 4, 3, 5), [-1], False),
    "channels_keep": ((1, 4, 3, 5), [3], True),
    "first_axis_keep": ((3, 4, 5), [0], True),
    "three_axes": ((2, 4, 3, 5), [3, 1, 2], False),
    "outer_and_inner": ((2, 4, 3, 5), [0, 3], False),  # axes that do not merge into one loop
    "all_axes": ((2, 3, 4), [0, 1, 2], False),
    "duplicate_negative": ((2, 6, 5), [1, -2], True),
    "rank2": ((7, 9), [0], False),
}


def case(name: str) -> Case:
    shape, axes, keep = CASES[name]
    m, x, y = mean_model(shape, axes, keep, s_in=0.05, zp_in=-3, s_out=0.05, zp_out=-3, opname="REDUCE_MIN")
    return Case(m, [x], [y], n=6, seed=14)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_reduce_min(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("reduce_min"))
def test_reduce_min_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_reduce_min_of_all_127_is_127(tmp_path):
    m, x, y = mean_model((1, 3, 3, 4), [1, 2], True, s_in=0.05, zp_in=-3, s_out=0.05, zp_out=-3,
                         opname="REDUCE_MIN")
    out = check(m, tmp_path, [x], [y], n=2, seed=5)
    assert np.all(out[-2] == -128) and np.all(out[-1] == 127)  # input_sets ends with all -128, all 127


@pytest.mark.parametrize("kw, message", [
    ({"s_out": 0.1}, r"REDUCE_MIN with different input and output quantization is not supported"),
    ({"dtype": "float32"}, r"REDUCE_MIN of float32 -> float32 is not supported \(int8 only\)"),
])
def test_reduce_min_refusals(tmp_path, kw, message):
    q = {"s_in": 0.05, "zp_in": -3, "s_out": 0.05, "zp_out": -3} | kw
    m, x, y = mean_model((1, 4, 4, 2), [1, 2], True, opname="REDUCE_MIN", **q)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, [x], [y]))
