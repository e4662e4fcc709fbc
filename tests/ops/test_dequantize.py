"""DEQUANTIZE: int8 -> float32, every int8 value, zero points at both ends."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import check

DEQUANT_CASES = {"zp0": (0.1, 0), "zp_m128": (0.0037, -128), "zp127": (1 / 3, 127), "large": (1e5, 3)}


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("case", list(DEQUANT_CASES))
def test_dequantize(tmp_path, case, golden):
    scale, zp = DEQUANT_CASES[case]
    m = ModelBuilder()
    x = m.tensor("x", [4, 64], scale=scale, zero_point=zp)
    y = m.tensor("y", [4, 64], "float32")
    m.op("DEQUANTIZE", [x], [y])
    check(m, tmp_path, [x], [y], goldens=(golden,), n=2, seed=12,
          extra=[[np.arange(-128, 128, dtype=np.int8).reshape(4, 64)]])
