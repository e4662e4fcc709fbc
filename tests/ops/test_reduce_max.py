"""REDUCE_MAX: int8 and float32, one or several axes, negative axes, keep_dims."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite

from ._harness import Case, check, check_case, save
from ._targets import check_targets, targets
from .test_mean import mean_model

CASES = {
    "hw_keep": ((1, 5, 7, 6), [1, 2], True),
    "hw_nokeep": ((1, 5, 7, 6), [1, 2], False),
    "last_axis": ((2, 4, 3, 5), [-1], False),
    "first_axis_keep": ((3, 4, 5), [0], True),
    "three_axes": ((2, 4, 3, 5), [3, 1, 2], False),
    "all_axes": ((2, 3, 4), [0, 1, 2], False),  # LiteRT's ReduceAllDims path
    "all_axes_keep": ((2, 3, 4), [2, 0, 1], True),
    "duplicate_negative": ((2, 6, 5), [1, -2], True),
    "rank2": ((7, 9), [0], False),
}


def case(name: str, dtype: str) -> Case:
    shape, axes, keep = CASES[name]
    m, x, y = mean_model(shape, axes, keep, dtype=dtype, s_in=0.05, zp_in=-3, s_out=0.05, zp_out=-3,
                         opname="REDUCE_MAX")
    return Case(m, [x], [y], n=6, seed=4)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_reduce_max(tmp_path, name, dtype, golden):
    check_case(case(name, dtype), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("reduce_max"))
def test_reduce_max_on_targets(tmp_path, target):
    """int8 only: spec reduce_max lists float32, but the C export passes float buffers to
    dmx_reduce_max_s8 (an -Werror build failure) and HLS refuses them (reported)."""
    check_targets(tmp_path, target, {name: case(name, "int8") for name in CASES})


def test_int8_reduce_max_with_requantization_is_refused(tmp_path):
    # TFLite requires equal input and output quantization (EvalType checks it); so does the frontend.
    m, x, y = mean_model((1, 4, 4, 2), [1, 2], True, s_in=0.05, zp_in=-3, s_out=0.1, zp_out=-3,
                         opname="REDUCE_MAX")
    with pytest.raises(DmxError, match="REDUCE_MAX.*different input and output quantization"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_reduce_max_of_all_minus_128_is_minus_128(tmp_path):
    m, x, y = mean_model((1, 3, 3, 4), [1, 2], True, s_in=0.05, zp_in=-3, s_out=0.05, zp_out=-3,
                         opname="REDUCE_MAX")
    out = check(m, tmp_path, [x], [y], n=2, seed=5)
    assert np.all(out[-2] == -128) and np.all(out[-1] == 127)  # input_sets ends with all -128, all 127
