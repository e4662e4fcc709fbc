"""softmax_gemmlowp: int8 SOFTMAX as TFLite Micro runs it (integer only), on test_softmax.py's cases."""
from __future__ import annotations

import pytest

from dmxgen.frontends.tflite import load_tflite

from ._harness import check_case, save
from ._targets import check_targets, targets
from .test_softmax import CASES, case, softmax_model


@pytest.mark.parametrize("name", list(CASES))
def test_softmax_gemmlowp(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


# beta_100 has input_left_shift 31: the kernels once computed `1 << 31` in int (signed overflow,
# stopped by UBSan in the sanitized host build); they now wrap the int64 product as TFLM's int32 does.
SHIFT_31 = "beta_100"


@pytest.mark.parametrize("target", targets("softmax_gemmlowp"))
def test_softmax_gemmlowp_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, semantics="tflm")


def test_softmax_gemmlowp_shift_31_on_host_c(tmp_path):
    """Regression: the sanitized host build of the shift-31 case alone is bit-exact."""
    c = case(SHIFT_31)
    assert load_tflite(save(c.m, tmp_path, c.inputs, c.outputs), semantics="tflm").ops[0].attrs["input_left_shift"] == 31
    check_targets(tmp_path, "c", {SHIFT_31: case(SHIFT_31)}, semantics="tflm")


def test_tflm_semantics_give_the_gemmlowp_kind(tmp_path):
    m, x, y = softmax_model((1, 10))
    path = save(m, tmp_path, [x], [y])
    assert [(op.name, op.kind) for op in load_tflite(path, semantics="tflm").ops] == [("softmax_0", "softmax_gemmlowp")]
    assert [op.kind for op in load_tflite(path).ops] == ["softmax"]
