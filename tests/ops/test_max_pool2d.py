"""MAX_POOL_2D: SAME padding (out-of-image taps never win), VALID, strides, 1x1 output."""
from __future__ import annotations

import pytest

from ._harness import check
from .test_avg_pool2d import CASES, pool_model


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("case", list(CASES))
def test_max_pool2d(tmp_path, case, golden):
    m, x, y = pool_model("MAX_POOL_2D", **CASES[case])
    check(m, tmp_path, [x], [y], goldens=(golden,), n=6, seed=6)
