"""DEQUANTIZE: int8 -> float32, every int8 value, zero points at both ends."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case
from ._targets import check_targets, targets

DEQUANT_CASES = {"zp0": (0.1, 0), "zp_m128": (0.0037, -128), "zp127": (1 / 3, 127), "large": (1e5, 3)}


def case(name: str) -> Case:
    scale, zp = DEQUANT_CASES[name]
    m = ModelBuilder()
    x = m.tensor("x", [4, 64], scale=scale, zero_point=zp)
    y = m.tensor("y", [4, 64], "float32")
    m.op("DEQUANTIZE", [x], [y])
    return Case(m, [x], [y], n=2, seed=12, extra=[[np.arange(-128, 128, dtype=np.int8).reshape(4, 64)]])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(DEQUANT_CASES))
def test_dequantize(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("dequantize"))
def test_dequantize_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in DEQUANT_CASES})


DEQUANT16_CASES = {"fine": 3.1e-5, "pow2": 2.0**-12, "large": 10.0}


def case16(name: str) -> Case:
    m = ModelBuilder()
    x = m.tensor("x", [4, 64], "int16", scale=DEQUANT16_CASES[name], zero_point=0)
    y = m.tensor("y", [4, 64], "float32")
    m.op("DEQUANTIZE", [x], [y])
    ramp = np.linspace(-32768, 32767, 256).round().astype(np.int16).reshape(4, 64)
    return Case(m, [x], [y], n=2, seed=15, extra=[[ramp]])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(DEQUANT16_CASES))
def test_dequantize_int16(tmp_path, name, golden):
    check_case(case16(name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("dequantize"))
def test_dequantize_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in DEQUANT16_CASES})
