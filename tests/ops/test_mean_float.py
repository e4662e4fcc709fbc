"""mean_float: float32 MEAN, summed in the input's order as reference_ops::Mean (numpy's pairwise sum differs)."""
from __future__ import annotations

import pytest

from dmxgen.frontends.tflite import load_tflite

from ._harness import Case, check_case, save
from ._targets import check_targets, targets
from .test_mean import mean_model


FLOAT = {
    "hw_keep": ((1, 5, 7, 6), [1, 2], True),
    "hw_nokeep": ((1, 5, 7, 6), [1, 2], False),
    "last_axis_long": ((3, 200), [1], False),  # numpy's pairwise sum would differ from C's loop here
    "first_axis": ((9, 4, 5), [0], True),
    "all_axes": ((4, 6, 7), [0, 1, 2], False),
    "mixed_axes": ((2, 5, 3, 7), [3, 1], True),
}


def case(name: str) -> Case:
    shape, axes, keep = FLOAT[name]
    m, x, y = mean_model(shape, axes, keep, dtype="float32")
    return Case(m, [x], [y], n=6, seed=3, float_range=1000.0)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(FLOAT))
def test_float_mean(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,))


# mean_float declares no printing target today (the backends print integer graphs): no params, one skip
@pytest.mark.parametrize("target", targets("mean_float"))
def test_float_mean_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in FLOAT})


def test_a_float_mean_is_the_mean_float_kind(tmp_path):
    m, x, y = mean_model((1, 5, 7, 6), [1, 2], True, dtype="float32")
    ops = load_tflite(save(m, tmp_path, [x], [y])).ops
    assert [(op.name, op.kind, dict(op.attrs)) for op in ops] == [("mean_0", "mean_float", {"axes": (1, 2)})]
