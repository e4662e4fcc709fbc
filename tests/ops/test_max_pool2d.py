"""MAX_POOL_2D: SAME padding (out-of-image taps never win), VALID, strides, 1x1 output."""
from __future__ import annotations

import pytest

from ._harness import check_case
from ._targets import check_targets, targets
from .test_avg_pool2d import CASES, pool_case


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_max_pool2d(tmp_path, name, golden):
    check_case(pool_case("MAX_POOL_2D", name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("max_pool2d"))
def test_max_pool2d_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: pool_case("MAX_POOL_2D", name) for name in CASES})
