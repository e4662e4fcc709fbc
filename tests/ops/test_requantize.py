"""requantize: TFLite QUANTIZE of an int8 input, int8 -> int8 onto another scale and zero point."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.frontends.tflite import load_tflite

from ._harness import Case, check_case
from ._targets import check_targets, targets
from .test_quantize import quantize_model


REQUANT_CASES = {
    "scale_down": (0.1, 0, 0.05, 0),  # (in_scale, in_zp, out_scale, out_zp); values double, so they clip
    "scale_up": (0.05, -3, 0.2, 4),
    "zp_change_only": (0.05, -10, 0.05, 20),
    "zp_127_both": (0.02, 127, 0.01, 127),
    "zp_m128_both": (0.01, -128, 0.02, -128),
    "ratio_just_below_one": (0.0999, 1, 0.1, -1),
    "ratio_large": (1.0, 0, 0.001, 0),
    "ratio_tiny": (0.001, 5, 1.0, -5),
}


def case(name: str) -> Case:
    s_in, zp_in, s_out, zp_out = REQUANT_CASES[name]
    m, x, y = quantize_model(s_out, zp_out, "int8", s_in, zp_in)
    every = np.resize(np.arange(-128, 128, dtype=np.int8), 100).reshape(2, 50)
    rest = np.arange(-128, 128, dtype=np.int8)[100:200].reshape(2, 50)
    return Case(m, [x], [y], n=4, seed=11, extra=[[every], [rest]])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(REQUANT_CASES))
def test_requantize_int8(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=1 if name == "ratio_tiny" else 2)


@pytest.mark.parametrize("target", targets("requantize"))
def test_requantize_int8_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in REQUANT_CASES})


def test_an_int8_quantize_is_a_requantize_op_named_after_the_operator(tmp_path):
    m, x, y = quantize_model(0.05, 3, "int8", 0.1, -2)
    ops = load_tflite(m.save(tmp_path / "m.tflite", [x], [y])).ops
    assert [(op.name, op.kind) for op in ops] == [("quantize_0", "requantize")]
    assert ops[0].spec.inplace(ops[0])


# -- to and from int16 (16x8 models begin and end with these) -------------------------------------------
INT16_CASES = {  # (in dtype, in_scale, in_zp, out dtype, out_scale, out_zp)
    "s8_to_s16": ("int8", 0.05, -3, "int16", 0.05 / 256, 0),
    "s8_to_s16_coarse": ("int8", 0.02, 127, "int16", 0.5, 0),  # values round onto few codes
    "s16_to_s8": ("int16", 1e-4, 0, "int8", 0.02, 5),  # clips: 3.2768 / 0.02 > 127
    "s16_to_s8_zp_m128": ("int16", 3e-5, 0, "int8", 0.004, -128),
    "s16_to_s16": ("int16", 1e-4, 0, "int16", 3e-4, 0),
    "s16_to_s16_up": ("int16", 3e-4, 0, "int16", 1e-4, 0),  # clips at both ends
}


def case16(name: str) -> Case:
    dt_in, s_in, zp_in, dt_out, s_out, zp_out = INT16_CASES[name]
    m, x, y = quantize_model(s_out, zp_out, dt_in, s_in, zp_in, out_dtype=dt_out)
    info = np.iinfo(dt_in)
    ramp = np.linspace(info.min, info.max, 100).round().astype(dt_in).reshape(2, 50)
    return Case(m, [x], [y], n=4, seed=14, extra=[[ramp]])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(INT16_CASES))
def test_requantize_int16(tmp_path, name, golden):
    out = check_case(case16(name), tmp_path, goldens=(golden,))
    assert out.dtype == np.dtype(INT16_CASES[name][3])


@pytest.mark.parametrize("target", targets("requantize"))
def test_requantize_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in INT16_CASES})


def test_an_int8_to_int16_requantize_is_not_planned_in_place(tmp_path):
    from dmxgen.plan import plan_memory

    m, x, y = quantize_model(0.05 / 256, 0, "int8", 0.05, -3, out_dtype="int16")
    g = load_tflite(m.save(tmp_path / "m.tflite", [x], [y]))
    assert plan_memory(g).inplace == set()
