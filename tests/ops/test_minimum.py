"""MINIMUM: test_maximum.py's cases (broadcasting, constants, extreme grids) on MINIMUM, on every
target, and torch.minimum from PyTorch (the refusals of two grids are tested there for both)."""
from __future__ import annotations

import numpy as np
import pytest

from ._harness import check_case
from ._targets import check_targets, targets
from .test_maximum import CASES, TORCH_CASES, case, check_torch_select

VALID_ATTRS = [{}]


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_minimum(tmp_path, name, golden):
    out = check_case(case(name, "MINIMUM"), tmp_path, goldens=(golden,), min_distinct=3)
    shape_a, shape_b, _ = CASES[name]
    assert out.shape[1:] == np.broadcast_shapes(shape_a, shape_b)


@pytest.mark.parametrize("target", targets("minimum"))
def test_minimum_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name, "MINIMUM") for name in CASES})


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_minimum_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    check_torch_select(name, "minimum")
