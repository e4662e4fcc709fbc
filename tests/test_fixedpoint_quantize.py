"""fixedpoint.quantize_float, the one float -> int8 rounding, against LiteRT's and TFLM's QUANTIZE."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.goldens import run_golden
from dmxgen.graph.fixedpoint import quantize_float
from dmxgen.testing.tflite_builder import ModelBuilder

N = 200


def quantize_model(tmp_path, scale: float, zero_point: int):
    m = ModelBuilder()
    x = m.tensor("x", [N], "float32")
    y = m.tensor("y", [N], "int8", scale=scale, zero_point=zero_point)
    m.op("QUANTIZE", [x], [y])
    return m.save(tmp_path / "quantize.tflite", [x], [y])


def ties(scale: float) -> np.ndarray:
    """(k + 1/2) * scale in float32, and the float32 neighbours of each: where the rounding and the
    precision of the division (float32 in TFLite, not float64) decide the code."""
    k = np.arange(-35, 15, dtype=np.float32)
    half = ((k + np.float32(0.5)) * np.float32(scale)).astype(np.float32)
    values = np.concatenate([half, np.nextafter(half, np.float32(np.inf)), np.nextafter(half, np.float32(-np.inf)),
                             np.array([-1.25, -0.25, 0.25, 1.25, -0.0, 0.0], np.float32) * np.float32(scale / 0.5)])
    return np.resize(values, N).astype(np.float32)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("scale,zero_point", [(0.5, 0), (0.25, 3), (0.1, -5), (1 / 3, 0), (0.0371, 7)])
def test_quantize_float_equals_the_interpreters_on_ties(tmp_path, scale, zero_point, golden):
    path = quantize_model(tmp_path, scale, zero_point)
    x = ties(scale)
    want = run_golden(path, [x], golden)[0]
    got = quantize_float(x, scale, zero_point, "int8")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)


def test_issue_example_rounds_half_away_from_zero(tmp_path):
    """-1.25 and -0.25 at scale 0.5 are -2.5 and -0.5: TFLite gives -3 and -1 (round half up gave -2, 0)."""
    x = np.resize(np.array([-1.25, -0.25, 0.25, 1.25], np.float32), N)
    want = run_golden(quantize_model(tmp_path, 0.5, 0), [x], "tflite")[0]
    assert want[:4].tolist() == [-3, -1, 1, 3]
    assert quantize_float(x, 0.5, 0, "int8")[:4].tolist() == [-3, -1, 1, 3]


def test_quantize_float_clamps_to_the_dtype():
    """Values beyond int32 (and NaN, inf) follow LiteRT: tests/test_hostile_quant.py."""
    x = np.array([1e6, -1e6, 127.4, -128.6], np.float32)
    assert quantize_float(x, 1.0, 0, "int8").tolist() == [127, -128, 127, -128]
    assert quantize_float(x, 1.0, 0, "int16").tolist() == [32767, -32768, 127, -129]
