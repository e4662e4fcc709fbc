"""quantize: TFLite QUANTIZE of a float32 input (ties, signed zeros, out-of-range values); int8 inputs: test_requantize.py."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.goldens import run_golden
from dmxgen.graph import Graph, Op, QuantParams, Tensor
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check, check_case
from ._targets import check_targets, targets


def quantize_model(scale, zp, in_dtype="float32", in_scale=None, in_zp=None, shape=(2, 50), out_dtype="int8"):
    m = ModelBuilder()
    q_in = {"scale": in_scale, "zero_point": in_zp} if in_dtype != "float32" else {}
    x = m.tensor("x", shape, in_dtype, **q_in)
    y = m.tensor("y", shape, out_dtype, scale=scale, zero_point=zp)
    m.op("QUANTIZE", [x], [y])
    return m, x, y


def float_edges(scale: float, zp: int, shape=(2, 50)) -> list[list[np.ndarray]]:
    """Exact ties (k + 0.5) * scale, both signed zeros, the clamp edges, and far beyond the int8 range.

    Not beyond the int32 range: there TFLite's static_cast<int32_t>(float) is
    undefined; on x86 it yields INT32_MIN (so LiteRT and TFLM's host build give
    -128 for +3e9 / scale, or 127 once the zero point wraps it), which the
    reference reproduces (test_quantize_beyond_int32_and_nan_follow_the_interpreters).
    """
    k = np.arange(-70, 30, dtype=np.float32)
    ties = ((k + np.float32(0.5)) * np.float32(scale)).astype(np.float32)
    edges = np.array([-0.0, 0.0, (-128 - zp) * scale, (127 - zp) * scale, (-128.5 - zp) * scale,
                      (127.5 - zp) * scale, (-129 - zp) * scale, (128 - zp) * scale, 1e6 * scale, -1e6 * scale,
                      2e9 * scale, -2e9 * scale, np.finfo(np.float32).tiny, -np.finfo(np.float32).tiny], np.float32)
    edges = np.resize(edges, int(np.prod(shape)))
    return [[ties.reshape(shape)], [edges.reshape(shape)], [np.full(shape, -0.0, np.float32)]]


FLOAT_CASES = {
    "pow2_scale_zp0": (0.25, 0),  # ties are exact: round half away from zero
    "pow2_scale_zp_m128": (0.5, -128),
    "pow2_scale_zp127": (0.125, 127),
    "odd_scale": (0.0371, 3),
    "tiny_scale": (1e-5, -5),
    "large_scale": (100.0, 1),
}


def case(name: str) -> Case:
    scale, zp = FLOAT_CASES[name]
    m, x, y = quantize_model(scale, zp)
    return Case(m, [x], [y], n=6, seed=10, float_range=40 * scale, extra=float_edges(scale, zp))


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(FLOAT_CASES))
def test_quantize_float(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("quantize"))
def test_quantize_float_on_targets(tmp_path, target):
    """The ties, signed zeros and far out-of-range floats of float_edges, in C as in the reference."""
    check_targets(tmp_path, target, {name: case(name) for name in FLOAT_CASES})


def test_quantize_ties_round_away_from_zero(tmp_path):
    """(k + 0.5) * 0.25 must quantize to k + 1 for k >= 0 and k for k < 0, as std::round does."""
    m, x, y = quantize_model(0.25, 0)
    k = np.arange(-50, 50, dtype=np.float32).reshape(2, 50)
    out = check(m, tmp_path, [x], [y], n=0, extremes=False, extra=[[((k + 0.5) * 0.25).astype(np.float32)]])
    np.testing.assert_array_equal(out[0], np.where(k >= 0, k + 1, k).astype(np.int8))


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("zp", [-128, 0])
def test_quantize_beyond_int32_and_nan_follow_the_interpreters(tmp_path, golden, zp):
    """|x / scale| >= 2**31 and NaN: INT32_MIN, then the zero point added with int32 wrap-around,
    as LiteRT and TFLM compute on the host (issue 18 item 8; see float_edges)."""
    g = Graph(source="test")
    g.add_tensor(Tensor("x", (6,), "float32"))
    g.add_tensor(Tensor("y", (6,), "int8", QuantParams(0.5, zp)))
    g.inputs, g.outputs = ["x"], ["y"]
    g.ops.append(Op("q", "quantize", ["x"], ["y"], {"scale": 0.5, "zero_point": zp}))
    x = np.array([3e9, -3e9, 1e30, -1e30, np.nan, np.inf], np.float32)
    out = reference.run(g, [x])["y"]
    m, xt, yt = quantize_model(0.5, zp, shape=(6,))
    want = run_golden(m.save(tmp_path / "q.tflite", [xt], [yt]), [x], golden)[0]
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out, np.full(6, 127 if zp < 0 else -128))


# -- int16 codes (TFLite's 16x8 scheme: symmetric, zero point 0) ---------------------------------------
INT16_CASES = {"pow2_scale": 2.0**-10, "odd_scale": 3.7e-4, "tiny_scale": 1e-7, "large_scale": 0.5}


def case16(name: str) -> Case:
    scale = INT16_CASES[name]
    m, x, y = quantize_model(scale, 0, out_dtype="int16")
    k = np.arange(-50, 50, dtype=np.float32).reshape(2, 50)
    ties = [((k * 700 + np.float32(0.5)) * np.float32(scale)).astype(np.float32)]  # k * 700 + 0.5: exact ties
    edges = [np.resize(np.array([-0.0, 0.0, -32768.5 * scale, 32767.5 * scale, -32769 * scale, 32768 * scale,
                                 1e6 * scale, -1e6 * scale], np.float32), 100).reshape(2, 50)]
    return Case(m, [x], [y], n=4, seed=13, float_range=40000 * scale, extra=[ties, edges])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(INT16_CASES))
def test_quantize_float_to_int16(tmp_path, name, golden):
    out = check_case(case16(name), tmp_path, goldens=(golden,))
    assert out.dtype == np.int16 and out.min() == -32768 and out.max() == 32767  # the clamps were reached


@pytest.mark.parametrize("target", targets("quantize"))
def test_quantize_float_to_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in INT16_CASES})


def test_an_int16_output_with_a_zero_point_is_refused(tmp_path):
    from dmxgen.errors import DmxError
    from dmxgen.frontends.tflite import load_tflite

    m, x, y = quantize_model(0.001, 3, out_dtype="int16")
    with pytest.raises(DmxError, match=r"operator 0 \(QUANTIZE\): tensor 'y' \(int16\) has zero point 3; it must be 0"):
        load_tflite(m.save(tmp_path / "q.tflite", [x], [y]))
