"""MUL: broadcasting, constants, scales, activations, saturation, and how the multiplier is derived; int16 (16x8).

LiteRT's mul.cc computes s1 * s2 / s_out in float32 before QuantizeMultiplier;
TFLite Micro's mul_common.cc does it in double. The scales in
test_multiplier_precision were found by search so that the two multipliers
give different int8 outputs on some input pairs.
"""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph.fixedpoint import quantize_multiplier
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check, check_case, save
from ._targets import check_targets, targets, targets16
from .test_add import _s, binary16, binary_model

CASES = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
    "different_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.003, 0.2, 0.02)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
    "const_scalar": ((1, 4, 4, 3), (), {"const_b": True}),
    "const_scalar_zp127": ((1, 4, 4, 3), (1,), {"const_b": True, "zp": (0, 127, 0)}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const_b": True}),
    "zp_m128": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (-128, -128, -128), "s": (0.05, 0.05, 0.01)}),
    "zp_127": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (127, 127, -128), "s": (0.05, 0.05, 0.01)}),
    "relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU", "zp": (0, 0, -60)}),
    "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (0.05, 0.05, 0.04), "zp": (0, 0, -100)}),
    "relu_n1_to_1": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU_N1_TO_1", "s": (0.1, 0.1, 0.01), "zp": (0, 0, 0)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.1, 0.01)}),
    "multiplier_above_one": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.5, 0.5, 0.1), "zp": (0, 0, 0)}),
    "tiny_multiplier": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.001, 0.001, 0.0005)}),
}


def case(name: str) -> Case:
    shape_a, shape_b, kw = CASES[name]
    m, ins, y = binary_model("MUL", shape_a, shape_b, seed=len(name), **kw)
    return Case(m, ins, [y], n=6, seed=8)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_mul(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)


@pytest.mark.parametrize("target", targets("mul"))
def test_mul_on_targets(tmp_path, target):
    """Both semantics: LiteRT's float32 multiplier and TFLM's double one."""
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=list(CASES))


def test_mul_every_input_pair(tmp_path):
    """All 65536 (a, b) pairs at once through broadcasting [256, 1] * [1, 256]."""
    m = ModelBuilder()
    a = m.tensor("a", [256, 1], scale=0.03, zero_point=-7)
    b = m.tensor("b", [1, 256], scale=0.05, zero_point=11)
    y = m.tensor("y", [256, 256], scale=0.2, zero_point=3)
    m.op("MUL", [a, b], [y])
    every = np.arange(-128, 128, dtype=np.int8)
    check(m, tmp_path, [a, b], [y], n=0, extremes=False, extra=[[every.reshape(256, 1), every.reshape(1, 256)]])


# (s1, s2, s_out), the int8 values whose products show the difference, golden, semantics
PRECISION = {
    "litert_float32": ((0.09063765, 0.07989598, 0.92032963), None, "tflite"),
    "tflm_double": ((0.021060289815068245, 0.09704334288835526, 0.308211088180542), [-109, -92, 92, 109], "tflm"),
}


@pytest.mark.parametrize("case", list(PRECISION))
def test_multiplier_precision(tmp_path, case):
    (s1, s2, so), values, golden = PRECISION[case]
    values = np.arange(-128, 128) if values is None else np.array(values)
    k = values.size
    m = ModelBuilder()
    a = m.tensor("a", [k, 1], scale=s1, zero_point=0)
    b = m.tensor("b", [1, k], scale=s2, zero_point=0)
    y = m.tensor("y", [k, k], scale=so, zero_point=0)
    m.op("MUL", [a, b], [y])
    path = save(m, tmp_path, [a, b], [y])
    inputs = [values.astype(np.int8).reshape(k, 1), values.astype(np.int8).reshape(1, k)]
    gold = run_golden(path, inputs, golden)[0]
    g = load_tflite(path, semantics=golden)
    np.testing.assert_array_equal(reference.run(g, inputs)[g.outputs[0]], gold)
    # The other way of computing the multiplier must give another answer, or this proves nothing.
    s1, s2, so = (np.float32(v) for v in (s1, s2, so))
    other = float(s1) * float(s2) / float(so) if golden == "tflite" else float(np.float32(s1 * s2) / so)
    g.ops[0].attrs["output_multiplier"], g.ops[0].attrs["output_shift"] = quantize_multiplier(other)
    assert np.any(reference.run(g, inputs)[g.outputs[0]] != gold)


# -- int16 (TFLite's 16x8 scheme): the int8 arithmetic on int16 codes, zero points 0 --------------------------
CASES16 = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.05, 0.05, 0.1)}),
    "different_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.003, 0.2, 0.02)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {"s": _s(0.05, 0.05, 0.1)}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {"s": _s(0.05, 0.05, 0.1)}),
    "const_scalar": ((1, 4, 4, 3), (), {"const": "b", "s": _s(0.05, 0.05, 0.1)}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const": "b", "s": _s(0.05, 0.02, 0.06)}),
    "relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU", "s": _s(0.05, 0.05, 0.1)}),
    "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (1e-4, 1e-4, 4e-4)}),  # 6 is code 15000
    "relu_n1_to_1": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU_N1_TO_1", "s": (1e-4, 1e-4, 1e-4)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (1e-4, 1e-4, 5e-5)}),
    "unit_multiplier_region": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (2**-8, 2**-8, 2**-1)}),  # 2^-15 x 2^30 = 2^15
    "tiny_multiplier": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.001, 0.001, 0.0005)}),
    "precision_litert_float32": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": PRECISION["litert_float32"][0]}),
    "precision_tflm_double": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": PRECISION["tflm_double"][0]}),
}


def case16(name: str) -> Case:
    shape_a, shape_b, kw = CASES16[name]
    m, ins, y = binary16("MUL", shape_a, shape_b, seed=len(name), **kw)
    return Case(m, ins, [y], n=6, seed=18)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES16))
def test_mul_int16(tmp_path, name, golden):
    assert check_case(case16(name), tmp_path, goldens=(golden,), min_distinct=3).dtype == np.int16


def test_mul_int16_saturates_both_rails(tmp_path):
    out = check_case(case16("saturate"), tmp_path)
    assert (out == 32767).mean() > 0.2 and (out == -32768).mean() > 0.2


def test_mul_int16_sampled_pairs_with_the_extremes(tmp_path):
    """256 x 256 pairs of int16 codes (both ends, 0, +-1 and a spread) through broadcasting."""
    m = ModelBuilder()
    a = m.tensor("a", [256, 1], "int16", scale=3e-4, zero_point=0)
    b = m.tensor("b", [1, 256], "int16", scale=5e-4, zero_point=0)
    y = m.tensor("y", [256, 256], "int16", scale=2e-3, zero_point=0)
    m.op("MUL", [a, b], [y])
    codes = np.unique(np.concatenate([[-32768, -32767, -1, 0, 1, 32766, 32767],
                                      np.random.default_rng(4).integers(-32768, 32768, 249)]))[:256]
    codes = np.resize(codes, 256).astype(np.int16)
    for golden in ("tflite", "tflm"):
        check(m, tmp_path, [a, b], [y], goldens=(golden,), n=0, extremes=False,
              extra=[[codes.reshape(256, 1), codes.reshape(1, 256)]])


def test_mul_int16_multiplier_that_would_overflow_is_refused(tmp_path):
    m, ins, y = binary16("MUL", (1, 4), (1, 4), s=(1e-2, 1e-2, 5e-5))  # s1 s2 / s_out = 2
    with pytest.raises(DmxError, match=r"int16 MUL multiplier 2 is 1 or more"):
        load_tflite(save(m, tmp_path, ins, [y]))


@pytest.mark.parametrize("target", targets16("mul"))
def test_mul_int16_on_targets(tmp_path, target):
    cases = {f"{name}_s16": case16(name) for name in CASES16}
    cases["same_shape_s8"] = case("same_shape")  # the int8 kernel beside the int16 one
    check_targets(tmp_path, target, cases, tflm=list(cases))
