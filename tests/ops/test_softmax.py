"""softmax: int8 SOFTMAX as LiteRT runs it (float exp table): beta, input scales, several rows, extreme rows."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets


def softmax_model(shape, beta=1.0, s_in=0.1, zp_in=0, s_out=1 / 256, zp_out=-128):
    m = ModelBuilder()
    x = m.tensor("x", shape, scale=s_in, zero_point=zp_in)
    y = m.tensor("y", shape, scale=s_out, zero_point=zp_out)
    m.op("SOFTMAX", [x], [y], beta=beta)
    return m, x, y


def extreme_rows(shape) -> list[list[np.ndarray]]:
    """One 127 among -128s, two tied maxima, a ramp, and rows one step apart."""
    rows, n = int(np.prod(shape[:-1])), shape[-1]
    one_hot = np.full((rows, n), -128, np.int8)
    one_hot[np.arange(rows), np.arange(rows) % n] = 127
    tied = np.full((rows, n), -20, np.int8)
    tied[:, :2] = 90
    ramp = np.tile(np.linspace(-128, 127, n).astype(np.int8), (rows, 1))
    step = np.tile(np.arange(n, dtype=np.int8), (rows, 1))
    return [[a.reshape(shape)] for a in (one_hot, tied, ramp, step)]


CASES = {
    "row10": ((1, 10), {}),
    "rows4": ((4, 10), {}),
    "nhwc": ((1, 2, 3, 8), {}),
    "beta_half": ((3, 12), {"beta": 0.5}),
    "beta_2": ((3, 12), {"beta": 2.0}),
    "beta_100": ((3, 12), {"beta": 100.0, "s_in": 0.5}),  # TFLM clamps the input multiplier at 2**31 - 1
    "small_scale": ((3, 16), {"s_in": 1 / 256, "zp_in": -128}),
    "large_scale": ((3, 16), {"s_in": 0.5, "zp_in": 10}),  # most differences fall below TFLM's diff_min
    "zp_127": ((2, 7), {"s_in": 0.05, "zp_in": 127}),
    "wide_row": ((2, 100), {"s_in": 0.08}),
    "two_classes": ((6, 2), {"s_in": 0.03}),
}


def case(name: str) -> Case:
    shape, kw = CASES[name]
    m, x, y = softmax_model(shape, **kw)
    return Case(m, [x], [y], n=8, seed=9, extra=extreme_rows(shape))


@pytest.mark.parametrize("name", list(CASES))
def test_softmax(tmp_path, name):
    """LiteRT's float-table softmax (TFLM's integer one: test_softmax_gemmlowp.py)."""
    check_case(case(name), tmp_path, goldens=("tflite",))


@pytest.mark.parametrize("target", targets("softmax"))
def test_softmax_on_targets(tmp_path, target):
    """LiteRT semantics: the softmax kind (TFLM's loads as softmax_gemmlowp)."""
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_softmax_output_quantization_is_checked(tmp_path):
    m, x, y = softmax_model((1, 10), s_out=1 / 128, zp_out=0)
    with pytest.raises(DmxError, match=r"SOFTMAX.*scale 1/256 and zero point -128"):
        load_tflite(save(m, tmp_path, [x], [y]))
