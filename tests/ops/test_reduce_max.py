"""REDUCE_MAX: int8 and float32, one or several axes, negative axes, keep_dims."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite

from ._harness import check, save
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


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_reduce_max(tmp_path, case, dtype, golden):
    shape, axes, keep = CASES[case]
    m, x, y = mean_model(shape, axes, keep, dtype=dtype, s_in=0.05, zp_in=-3, s_out=0.05, zp_out=-3,
                         opname="REDUCE_MAX")
    check(m, tmp_path, [x], [y], goldens=(golden,), n=6, seed=4)


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
