"""softmax_gemmlowp: int8 SOFTMAX as TFLite Micro runs it (integer only), on test_softmax.py's cases."""
from __future__ import annotations

import pytest

from dmxgen.frontends.tflite import load_tflite

from ._harness import save
from .test_softmax import CASES, run_case, softmax_model


@pytest.mark.parametrize("case", list(CASES))
def test_softmax_gemmlowp(tmp_path, case):
    run_case(tmp_path, case, "tflm")


def test_tflm_semantics_give_the_gemmlowp_kind(tmp_path):
    m, x, y = softmax_model((1, 10))
    path = save(m, tmp_path, [x], [y])
    assert [(op.name, op.kind) for op in load_tflite(path, semantics="tflm").ops] == [("softmax_0", "softmax_gemmlowp")]
    assert [op.kind for op in load_tflite(path).ops] == ["softmax"]
