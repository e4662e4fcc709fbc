"""mean: int8 and int16 MEAN (equal and different input/output quantization, several axes, keep_dims); float32:
test_mean_float.py.

LiteRT's reference and TFLite Micro both run int8 MEAN as
reference_ops::QuantizedMeanOrSum: sum - zp_in*count, then one requantization
whose multiplier folds in 1/count. A mean rounded before requantizing, or a
shortcut for equal quantization, differs from it by 1 LSB on many outputs.
"""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16


def mean_model(shape, axes, keep, dtype="int8", s_in=0.05, zp_in=-3, s_out=0.02, zp_out=5, opname="MEAN"):
    m = ModelBuilder()
    q_in = {"scale": s_in, "zero_point": zp_in} if dtype == "int8" else {}
    q_out = {"scale": s_out, "zero_point": zp_out} if dtype == "int8" else {}
    x = m.tensor("x", shape, dtype, **q_in)
    a = m.tensor("axes", [len(axes)], "int32", data=axes)
    red = {v % len(shape) for v in axes}
    out = [1 if i in red else d for i, d in enumerate(shape)] if keep else [d for i, d in enumerate(shape)
                                                                            if i not in red]
    y = m.tensor("y", out, dtype, **q_out)
    m.op(opname, [x, a], [y], keepDims=keep)
    return m, x, y


INT8 = {
    "hw_keep": ((1, 5, 7, 6), [1, 2], True, {}),
    "hw_nokeep": ((1, 5, 7, 6), [1, 2], False, {}),
    "wh_order_keep": ((2, 4, 3, 5), [2, 1], True, {}),
    "negative_axes": ((1, 5, 7, 6), [-3, -2], True, {}),
    "same_quant_keep": ((1, 5, 7, 6), [1, 2], True, {"s_out": 0.05, "zp_out": -3}),
    "same_quant_nokeep": ((2, 4, 3, 5), [1, 2], False, {"s_out": 0.05, "zp_out": -3}),
    "same_quant_last_axis": ((2, 4, 3, 5), [-1], True, {"s_in": 0.1, "zp_in": 10, "s_out": 0.1, "zp_out": 10}),
    "one_axis": ((2, 4, 3, 5), [2], False, {"s_in": 0.1, "zp_in": 10, "s_out": 0.03, "zp_out": -7}),
    "three_axes": ((2, 4, 3, 5), [1, 2, 3], False, {"s_in": 0.01, "zp_in": -128, "s_out": 0.002, "zp_out": 0}),
    "all_axes": ((2, 3, 4), [0, 1, 2], False, {"zp_in": 127, "s_out": 0.1, "zp_out": 0}),
    "duplicate_axes": ((1, 4, 4, 3), [1, 2, 1], True, {}),
    "rank2": ((6, 10), [1], False, {"s_out": 0.01, "zp_out": 0}),
    "count_1": ((1, 1, 1, 8), [1, 2], True, {}),
    "count_49": ((1, 7, 7, 4), [1, 2], True, {"zp_in": -128, "zp_out": -128, "s_out": 0.01}),
    "large_count": ((1, 16, 16, 2), [1, 2], True, {"s_in": 0.02, "s_out": 0.02, "zp_out": 0}),
    # right shift 1 after folding: double rounding's tie case is frequent
    "right_shift_1": ((1, 32, 2, 8), [2], False, {"s_in": 0.7, "zp_in": 0, "s_out": 1.0, "zp_out": 0}),
    "right_shift_1_odd_count": ((1, 16, 3, 8), [2], False, {"s_in": 0.3, "zp_in": 0, "s_out": 1.0, "zp_out": 0}),
    "output_larger_scale": ((1, 6, 6, 4), [1, 2], True, {"s_in": 0.02, "s_out": 0.5, "zp_out": 0}),
    "saturates": ((1, 6, 6, 4), [1, 2], True, {"s_in": 0.5, "zp_in": 0, "s_out": 0.01, "zp_out": 0}),
    "tiny_multiplier_large_count": ((1, 40, 40, 1), [1, 2], True, {"s_in": 2e-8, "zp_in": -128, "s_out": 1.0,
                                                                  "zp_out": 0}),
}


def case(name: str, seed: int = 1) -> Case:
    shape, axes, keep, kw = INT8[name]
    m, x, y = mean_model(shape, axes, keep, **kw)
    return Case(m, [x], [y], n=10, seed=seed)


@pytest.mark.parametrize("name", list(INT8))
def test_int8_mean_matches_litert(tmp_path, name):
    check_case(case(name), tmp_path, min_distinct=1 if name.startswith("tiny") else 2)


TFLM = ["hw_keep", "hw_nokeep", "same_quant_keep", "same_quant_last_axis", "one_axis", "three_axes", "right_shift_1",
        "saturates"]


@pytest.mark.parametrize("name", TFLM)
def test_int8_mean_matches_tflm(tmp_path, name):
    check_case(case(name, seed=2), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("mean"))
def test_int8_mean_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in INT8}, tflm=TFLM)


def test_folded_multiplier_clamps_the_shift(tmp_path):
    """A tiny s_in/s_out and a large count: the fold may not push the shift below -31."""
    shape, axes, keep, kw = INT8["tiny_multiplier_large_count"]
    m, x, y = mean_model(shape, axes, keep, **kw)
    attrs = load_tflite(save(m, tmp_path, [x], [y])).ops[0].attrs
    assert attrs["shift"] == -25 and attrs["mean_shift"] == -31  # folds 6 bits of log2(1600) = 10


# -- int16 (TFLite's 16x8 scheme: zero points 0; LiteRT and TFLM run the same QuantizedMeanOrSum) ------------
def case16(name: str, seed: int = 3) -> Case:
    c = case(name, seed)
    c.m.to_int16()
    return c


INT16_ONLY = {  # name -> (shape, axes, keep, scales): int16 codes need their own scales to saturate or not
    "large_count_s16": ((1, 32, 32, 2), [1, 2], True, (3e-4, 3e-4)),
    "saturates_s16": ((1, 6, 6, 4), [1, 2], True, (1e-3, 1e-5)),
    "right_shift_1_s16": ((1, 32, 2, 8), [2], False, (0.7 / 256, 1.0 / 256)),
}


def int16_case(name: str) -> Case:
    shape, axes, keep, (s_in, s_out) = INT16_ONLY[name]
    m, x, y = mean_model(shape, axes, keep, s_in=s_in, zp_in=0, s_out=s_out, zp_out=0)
    m.to_int16()  # the scales above are the int16 ones: undo the division by 256
    for t in (x, y):
        m.sg.tensors[t].quantization.scale = [v * 256 for v in m.sg.tensors[t].quantization.scale]
    return Case(m, [x], [y], n=8, seed=4)


def all16() -> dict[str, Case]:
    return {**{f"{name}_s16": case16(name) for name in INT8}, **{name: int16_case(name) for name in INT16_ONLY}}


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(all16()))
def test_int16_mean(tmp_path, name, golden):
    out = check_case(all16()[name], tmp_path, goldens=(golden,), min_distinct=1 if name.startswith("tiny") else 2)
    assert out.dtype == np.int16


def test_int16_mean_saturates_both_rails(tmp_path):
    out = check_case(int16_case("saturates_s16"), tmp_path)
    assert (out == 32767).mean() > 0.2 and (out == -32768).mean() > 0.2


@pytest.mark.parametrize("target", targets16("mean"))
def test_int16_mean_on_targets(tmp_path, target):
    cases = all16()
    cases["hw_keep_s8"] = case("hw_keep")  # the int8 kernel beside the int16 one
    check_targets(tmp_path, target, cases, tflm=[n for n in cases if n.startswith(tuple(TFLM))])


def test_int16_mean_refuses_a_count_whose_int32_sum_can_overflow(tmp_path):
    m, x, y = mean_model((1, 257, 256, 1), [1, 2], True, s_in=1e-3, zp_in=0, s_out=1e-3, zp_out=0)
    m.to_int16()
    with pytest.raises(DmxError, match=r"int16 mean of 65792 values: its int32 sum can overflow \(at most 65536\)"):
        load_tflite(save(m, tmp_path, [x], [y]))
    m, x, y = mean_model((1, 256, 256, 1), [1, 2], True, s_in=1e-3, zp_in=0, s_out=1e-3, zp_out=0)
    load_tflite(save(m.to_int16(), tmp_path, [x], [y]))  # 65536: -32768 * 65536 is INT32_MIN
