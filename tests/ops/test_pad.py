"""PAD and PADV2: int8 (pads with the zero point, or PADV2's constant) and float32."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check, check_case
from ._targets import check_targets, targets, targets16


def pad_model(shape, pads, dtype="int8", value=None, zp=-5, scale=0.05, pads_dtype="int32"):
    """PAD, or PADV2 when `value` is given (a constant of the input's type and quantization)."""
    m = ModelBuilder()
    q = {"scale": scale, "zero_point": zp} if dtype == "int8" else {}
    x = m.tensor("x", shape, dtype, **q)
    p = m.tensor("paddings", [len(shape), 2], pads_dtype, data=np.array(pads).reshape(len(shape), 2))
    out = [d + a + b for d, (a, b) in zip(shape, pads)]
    y = m.tensor("y", out, dtype, **q)
    if value is None:
        m.op("PAD", [x, p], [y])
    else:
        c = m.tensor("value", [1], dtype, data=[value], **q)
        m.op("PADV2", [x, p, c], [y])
    return m, x, y


CASES = {
    "hw_symmetric": ((1, 4, 4, 3), [[0, 0], [1, 1], [1, 1], [0, 0]]),
    "hw_asymmetric": ((1, 5, 4, 3), [[0, 0], [0, 2], [3, 1], [0, 0]]),
    "channels": ((1, 3, 3, 2), [[0, 0], [0, 0], [0, 0], [1, 3]]),
    "batch": ((1, 2, 2, 2), [[1, 2], [0, 0], [0, 0], [0, 0]]),
    "every_axis": ((2, 3, 2, 3), [[1, 0], [0, 2], [2, 1], [1, 1]]),
    "no_padding": ((1, 3, 3, 2), [[0, 0]] * 4),
    "rank2": ((3, 5), [[2, 1], [0, 3]]),
    "rank3": ((2, 3, 4), [[0, 1], [1, 0], [2, 2]]),
}


def case(name: str, dtype: str) -> Case:
    shape, pads = CASES[name]
    m, x, y = pad_model(shape, pads, dtype)
    return Case(m, [x], [y], n=3, seed=13)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_pad(tmp_path, name, dtype, golden):
    check_case(case(name, dtype), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("zp", [-128, 127])
def test_pad_with_extreme_zero_points(tmp_path, zp):
    m, x, y = pad_model((1, 3, 4, 2), [[0, 0], [2, 1], [1, 2], [0, 0]], zp=zp)
    out = check(m, tmp_path, [x], [y], goldens=("tflite", "tflm"), n=3, seed=14)
    assert np.all(out[:, :, :2, :, :] == zp)  # the padded rows hold the zero point


def test_pad_with_int64_paddings(tmp_path):
    m, x, y = pad_model((1, 3, 3, 2), [[0, 0], [1, 2], [2, 1], [0, 0]], pads_dtype="int64")
    check(m, tmp_path, [x], [y], n=3, seed=15)


PADV2 = {"int8_min": ("int8", -128), "int8_max": ("int8", 127), "int8_mid": ("int8", 17),
         "float_value": ("float32", 1.5), "float_negative": ("float32", -3.25)}


def padv2_case(name: str) -> Case:
    dtype, value = PADV2[name]
    m, x, y = pad_model((1, 3, 4, 2), [[0, 0], [1, 2], [2, 0], [0, 1]], dtype, value=value)
    return Case(m, [x], [y], n=3, seed=16)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(PADV2))
def test_padv2(tmp_path, name, golden):
    out = check_case(padv2_case(name), tmp_path, goldens=(golden,))
    assert np.all(out[:, :, 0] == np.asarray(PADV2[name][1], out.dtype))


@pytest.mark.parametrize("target", targets("pad"))
def test_pad_on_targets(tmp_path, target):
    """int8 only: spec pad lists float32, but the C kernel is dmx_pad_s8 and HLS refuses a float
    input that does not feed a QUANTIZE (reported; the float cases stay reference-only)."""
    cases = {name: case(name, "int8") for name in CASES}
    cases |= {f"padv2_{name}": padv2_case(name) for name, (dtype, _) in PADV2.items() if dtype == "int8"}
    check_targets(tmp_path, target, cases)


def test_pad_copies_bytes_even_if_quantization_differs(tmp_path):
    """PAD does not requantize: the input's bytes, then the output's zero point around them."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 2, 3, 2], scale=0.05, zero_point=-5)
    p = m.tensor("paddings", [4, 2], "int32", data=[[0, 0], [1, 1], [2, 0], [0, 0]])
    y = m.tensor("y", [1, 4, 5, 2], scale=0.1, zero_point=9)
    m.op("PAD", [x, p], [y])
    out = check(m, tmp_path, [x], [y], goldens=("tflite", "tflm"), n=3, seed=19)
    assert np.all(out[:, :, 0] == 9)


def test_padv2_constant_must_share_the_output_quantization(tmp_path):
    # LiteRT: "pad.cc:450 output->params.zero_point != constant_values->params.zero_point"; TFLM likewise.
    m = ModelBuilder()
    x = m.tensor("x", [1, 2, 2, 1], scale=0.05, zero_point=-5)
    p = m.tensor("paddings", [4, 2], "int32", data=[[0, 0], [1, 1], [1, 1], [0, 0]])
    c = m.tensor("value", [1], "int8", scale=0.05, zero_point=-5, data=[3])
    y = m.tensor("y", [1, 4, 4, 1], scale=0.1, zero_point=9)
    m.op("PADV2", [x, p, c], [y])
    with pytest.raises(DmxError, match=r"PADV2.*'value' is quantized .*unlike the output"):
        load_tflite(m.save(tmp_path / "padv2.tflite", [x], [y]))


# -- int16 codes (TFLite's 16x8 scheme: the same model with int16 activations, zero point 0) -------------
def case16(name: str) -> Case:
    shape, pads = CASES[name]
    m, x, y = pad_model(shape, pads, "int8", zp=0)
    return Case(m.to_int16(), [x], [y], n=3, seed=14)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_pad_int16(tmp_path, name, golden):
    assert check_case(case16(name), tmp_path, goldens=(golden,)).dtype == np.int16


@pytest.mark.parametrize("target", targets16("pad"))
def test_pad_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in CASES})
