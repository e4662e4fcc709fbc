"""FULLY_CONNECTED edge cases: batches, flattened 4-D input, keep_num_dims, bias, scales, rounding."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph.fixedpoint import quantize_multiplier
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, bias, check_case, input_sets, save, weights
from ._targets import check_targets, targets


def fc_model(seed=0, *, in_shape=(1, 16), cin=None, cout=8, per_channel=False, zp_in=-128, zp_out=-128, act="NONE",
             with_bias=True, keep_num_dims=False, spread=1.0, s_in=0.02, s_out=0.05, s_w=None, wrange=127):
    rng = np.random.default_rng(seed)
    cin = cin or in_shape[-1]
    batches = int(np.prod(in_shape)) // cin
    if s_w is None:
        base = s_out * 40 * spread / (s_in * np.sqrt(cin) * 74 * max(wrange / 1.7, 0.6))
        s_w = base * rng.uniform(0.5, 2.0, cout) if per_channel else np.array([base])
    s_w = np.atleast_1d(np.asarray(s_w, np.float32))
    m = ModelBuilder()
    x = m.tensor("x", in_shape, scale=s_in, zero_point=zp_in)
    wt = m.tensor("w", [cout, cin], scale=s_w, zero_point=np.zeros(s_w.size), axis=0,
                  data=weights(rng, (cout, cin), -wrange, wrange))
    ins = [x, wt]
    if with_bias:
        ins.append(m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(s_w.size),
                            data=bias(rng, cout, int(np.sqrt(cin) * 40 * wrange))))
    else:
        ins.append(-1)  # FULLY_CONNECTED's bias is an optional input
    out_shape = list(in_shape[:-1]) + [cout] if keep_num_dims else [batches, cout]
    y = m.tensor("y", out_shape, scale=s_out, zero_point=zp_out)
    m.op("FULLY_CONNECTED", ins, [y], fusedActivationFunction=act, keepNumDims=keep_num_dims)
    return m, x, y


CASES = {
    "base": {},
    "batches3": {"in_shape": (3, 16)},
    "flatten_nhwc": {"in_shape": (1, 3, 3, 4), "cout": 5},  # [1, h, w, c] read as one row of h*w*c
    "rows_of_4d": {"in_shape": (2, 2, 2, 8)},  # 8 columns: 8 rows of 8
    "rows_span_dims": {"in_shape": (2, 3, 4), "cin": 6},  # 4 rows of 6 that cut across the last axis
    "keep_num_dims": {"in_shape": (1, 2, 3, 8), "keep_num_dims": True},
    "keep_num_dims_3d": {"in_shape": (2, 3, 8), "keep_num_dims": True, "cout": 3},
    "no_bias": {"with_bias": False},
    "no_bias_batches": {"with_bias": False, "in_shape": (4, 10), "zp_in": 3},
    "zp_in_0": {"zp_in": 0},
    "zp_in_127_out_127": {"zp_in": 127, "zp_out": 127},
    "relu": {"act": "RELU", "zp_out": -30},
    "relu6": {"act": "RELU6", "s_out": 0.03, "zp_out": -100, "spread": 2.0},
    "relu_n1_to_1": {"act": "RELU_N1_TO_1", "s_out": 0.005, "zp_out": 0},
    "saturate": {"spread": 8.0, "in_shape": (2, 16)},
    "shift_positive": {"spread": 500.0, "zp_out": 0, "in_shape": (2, 4), "wrange": 2},
    "long_row": {"in_shape": (1, 500), "cout": 10},
    "per_channel": {"per_channel": True, "in_shape": (3, 16)},
    "per_channel_relu": {"per_channel": True, "act": "RELU", "zp_out": -60},
}


def case(name: str, seed: int = 1) -> Case:
    m, x, y = fc_model(seed=len(name), **CASES[name])
    return Case(m, [x], [y], n=8, seed=seed)


@pytest.mark.parametrize("name", list(CASES))
def test_fc_matches_litert(tmp_path, name):
    check_case(case(name), tmp_path)


TFLM = ["base", "batches3", "flatten_nhwc", "keep_num_dims", "no_bias", "zp_in_127_out_127", "relu6", "saturate",
        "per_channel"]


@pytest.mark.parametrize("name", TFLM)
def test_fc_matches_tflm(tmp_path, name):
    check_case(case(name, seed=2), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("fully_connected"))
def test_fc_on_targets(tmp_path, target):
    """Single (LiteRT) rounding on every case, double (TFLM) on those checked against TFLM."""
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=TFLM)


# (s_in, s_w, s_out), the int8 values (inputs and weights) whose products show the difference.
# Found by search: a multiplier from the float32 product s_in * s_w differs from the double one.
PRECISION = {
    "tflite": ((0.03666894882917404, 0.09103504568338394, 0.5057903528213501), [-109, -98, 98, 109]),
    "tflm": ((0.06682924926280975, 0.0941464975476265, 0.8176711797714233), [-111, -108, -74, -72, 72, 74, 108, 111]),
}


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("golden", list(PRECISION))
def test_multiplier_is_a_double_product(tmp_path, golden, per_channel):
    """Both interpreters derive the FC multiplier as double(s_in) * double(s_w) / double(s_out)."""
    (s_in, s_w, s_out), values = PRECISION[golden]
    k = len(values)
    m = ModelBuilder()
    x = m.tensor("x", [k, 1], scale=s_in, zero_point=0)
    scales = np.full(k if per_channel else 1, s_w, np.float32)
    w = m.tensor("w", [k, 1], scale=scales, zero_point=np.zeros(scales.size), axis=0,
                 data=np.array(values).reshape(k, 1))
    y = m.tensor("y", [k, k], scale=s_out, zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, -1], [y])
    path = save(m, tmp_path, [x], [y])
    inputs = [np.array(values, np.int8).reshape(k, 1)]
    gold = run_golden(path, inputs, golden)[0]
    g = load_tflite(path, semantics=golden)
    np.testing.assert_array_equal(reference.run(g, inputs)[g.outputs[0]], gold)
    float32_product = float(np.float32(np.float32(s_in) * np.float32(s_w))) / float(np.float32(s_out))
    mult, shift = quantize_multiplier(float32_product)
    g.ops[0].attrs["multiplier"] = np.full(k, mult, np.int32)
    g.ops[0].attrs["shift"] = np.full(k, shift, np.int32)
    assert np.any(reference.run(g, inputs)[g.outputs[0]] != gold)


@pytest.mark.parametrize("per_channel", [False, True])
def test_litert_rounds_once_tflm_twice(tmp_path, per_channel):
    """Real multipliers in [0.25, 0.5) (right shift 1) make the double rounding's tie case frequent.

    LiteRT's reference rounds once, TFLite Micro twice (docs/goldens.md): each
    semantics must match its own interpreter, and the two must differ, or this
    test could not tell them apart.
    """
    m, x, y = fc_model(seed=10, in_shape=(8, 6), cout=16, s_in=1.0, s_out=1.0, zp_in=0, zp_out=0, wrange=1,
                       with_bias=False, s_w=np.linspace(0.26, 0.45, 16) if per_channel else 0.3)
    path = save(m, tmp_path, [x], [y])
    g1, g2 = load_tflite(path), load_tflite(path, semantics="tflm")
    differ = 0
    for inputs in input_sets(g1, 6, seed=11, extremes=False):
        single, double = (reference.run(g, inputs)[g.outputs[0]] for g in (g1, g2))
        np.testing.assert_array_equal(single, run_golden(path, inputs, "tflite")[0])
        np.testing.assert_array_equal(double, run_golden(path, inputs, "tflm")[0])
        differ += int(np.count_nonzero(single != double))
    assert differ > 0
