"""FULLY_CONNECTED edge cases: batches, flattened 4-D input, keep_num_dims, bias, scales, rounding."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph.fixedpoint import quantize_multiplier
from dmxgen.backends.c import build_layers
from dmxgen.codecs.policy import StoragePolicy
from dmxgen.errors import DmxError
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder

from ._16x8 import loaded_case, to_16x8
from ._harness import Case, bias, case_sets, check_case, compare, input_sets, save, weights
from ._targets import check_targets, targets, targets16


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
    # power-of-two real multipliers: exact ties are frequent, and LiteRT rounds them away from zero
    "pot_ties": {"in_shape": (8, 6), "cout": 16, "s_in": 1.0, "s_out": 1.0, "zp_in": 0, "zp_out": 0, "wrange": 3,
                 "with_bias": False, "s_w": 0.25},
    "pot_ties_per_channel": {"in_shape": (4, 6), "cout": 8, "s_in": 1.0, "s_out": 1.0, "zp_in": 0, "zp_out": 0,
                             "wrange": 3, "s_w": [0.5, 0.25, 0.125, 0.0625] * 2},
    # every shift <= -2: the MVE build requantizes four lanes at once (common_mve.c.j2 dmx_rq4_s32)
    "pot_ties_four_lanes": {"in_shape": (4, 6), "cout": 8, "s_in": 1.0, "s_out": 1.0, "zp_in": 0, "zp_out": 0,
                            "wrange": 3, "with_bias": False, "s_w": [0.125, 0.0625, 0.03125, 0.125] * 2},
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
    """LiteRT's rounding (once, ties away from zero) on every case, double (TFLM) on those checked against TFLM."""
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


@pytest.mark.parametrize("per_channel", [False, True])
def test_litert_rounds_ties_away_from_zero(tmp_path, per_channel):
    """With power-of-two real multipliers (0.5, 0.25, 0.125: a rounded shift), acc * M * 2^shift / 2^31
    is often exactly k + 1/2. LiteRT's reference FC rounds those ties away from zero ("away"); the
    half-up single rounding agrees on positive ties and must differ on negative ones."""
    s_w = [0.5, 0.25, 0.125, 0.0625] * 4 if per_channel else 0.25
    m, x, y = fc_model(seed=10, in_shape=(8, 6), cout=16, s_in=1.0, s_out=1.0, zp_in=0, zp_out=0, wrange=3,
                       with_bias=False, s_w=s_w)
    path = save(m, tmp_path, [x], [y])
    g = load_tflite(path)
    op = g.ops[0]
    assert op.attrs["rounding"] == "away"
    w = g.tensors[op.inputs[1]].data.astype(np.int64)
    mult = np.broadcast_to(np.asarray(op.attrs["multiplier"], np.int64), (16,))
    t = 31 - np.broadcast_to(np.asarray(op.attrs["shift"], np.int64), (16,))
    ties = {"neg": 0, "pos": 0}
    differ = 0
    for inputs in input_sets(g, 6, seed=11, extremes=False):
        out = reference.run(g, inputs)[g.outputs[0]]
        np.testing.assert_array_equal(out, run_golden(path, inputs, "tflite")[0])
        prod = (inputs[0].astype(np.int64).reshape(-1, 6) @ w.T) * mult
        tie = (prod & ((np.int64(1) << t) - 1)) == (np.int64(1) << (t - 1))
        inside = (out > -128) & (out < 127)  # not clamped
        ties["neg"] += int(np.count_nonzero(tie & (prod < 0) & inside))
        ties["pos"] += int(np.count_nonzero(tie & (prod > 0) & inside))
        op.attrs["rounding"] = "single"
        wrong = reference.run(g, inputs)[g.outputs[0]] != out
        op.attrs["rounding"] = "away"
        assert not np.any(wrong & ~(tie & (prod < 0)))  # the half-up rounding errs on negative ties only
        differ += int(np.count_nonzero(wrong))
    assert ties["neg"] > 10 and ties["pos"] > 10, ties
    assert differ >= ties["neg"]  # ... and on each of them that no clamp hides


# -- 16x8: int16 activations (zero point 0), int8 weights, int64 bias (frontends/tflite_16x8.py) -----------
# name -> (fc_model kwargs, to_16x8 kwargs); fc_model's int8 zero points become int16's 0
CASES16 = {
    "base": ({}, {}),
    "batches3": ({"in_shape": (3, 16)}, {}),
    "flatten_nhwc": ({"in_shape": (1, 3, 3, 4), "cout": 5}, {}),
    "keep_num_dims": ({"in_shape": (1, 2, 3, 8), "keep_num_dims": True}, {}),
    "no_bias": ({"with_bias": False, "in_shape": (4, 10)}, {}),
    "per_channel": ({"per_channel": True, "in_shape": (3, 16)}, {}),
    "relu": ({"act": "RELU"}, {}),
    "relu6": ({"act": "RELU6", "s_out": 0.1, "spread": 0.5}, {}),  # 6 / s_out: 15360, inside int16
    "relu_n1_to_1": ({"act": "RELU_N1_TO_1", "s_out": 0.05, "spread": 0.2}, {}),  # +-1: +-5120
    "saturate": ({"spread": 8.0, "in_shape": (2, 16)}, {}),
    "long_row": ({"in_shape": (1, 500), "cout": 10}, {}),
    # +-2^33 on alternate channels: outputs near +-20000, the inputs' share a few LSB
    "bias_beyond_int32": ({"per_channel": True, "spread": 1.3e-3, "in_shape": (2, 16)}, {"bias_big": 2**33}),
    # power-of-two real multipliers: LiteRT's one rounding meets exact ties and rounds them away from zero
    "pot_ties": ({"in_shape": (8, 6), "cout": 16, "s_in": 1.0, "s_out": 1.0, "wrange": 3, "with_bias": False,
                  "s_w": 0.25}, {}),
    "pot_ties_per_channel": ({"in_shape": (4, 6), "cout": 8, "s_in": 1.0, "s_out": 1.0, "wrange": 3,
                              "s_w": [0.5, 0.25, 0.125, 0.0625] * 2}, {}),
}


def case16(name: str, seed: int = 1, **conv) -> Case:
    kw, to16 = CASES16[name] if name in CASES16 else ({}, {})
    m, x, y = fc_model(seed=len(name), **kw)
    return Case(to_16x8(m, **(to16 | conv)), [x], [y], n=6, seed=seed)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES16))
def test_fc_16x8_matches(tmp_path, name, golden):
    check_case(case16(name), tmp_path, goldens=(golden,), min_distinct=20)


def test_fc_16x8_saturates_at_the_int16_rails(tmp_path):
    out = check_case(case16("saturate"), tmp_path)
    assert (out == 32767).mean() > 0.1 and (out == -32768).mean() > 0.1


def test_fc_16x8_relu6_clamps_inside_int16(tmp_path):
    c = case16("relu6")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    out = check_case(c, tmp_path)
    assert 0 < g.ops[0].attrs["act_max"] < 32767 and out.max() == g.ops[0].attrs["act_max"] and out.min() == 0


def test_fc_16x8_roundings_differ_between_interpreters(tmp_path):
    """LiteRT's 16x8 FC rounds once with the Q31 multiplier ("away"), TFLite Micro's with the
    multiplier reduced to 16 bits ("reduced"): each matches its own interpreter, and they differ."""
    c = case16("per_channel")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    g1, g2 = load_tflite(path), load_tflite(path, semantics="tflm")
    assert (g1.ops[0].attrs["rounding"], g2.ops[0].attrs["rounding"]) == ("away", "reduced")
    differ = 0
    for inputs in input_sets(g1, 6, seed=3):
        single, reduced = (reference.run(g, inputs)[g.outputs[0]] for g in (g1, g2))
        np.testing.assert_array_equal(single, run_golden(path, inputs, "tflite")[0])
        np.testing.assert_array_equal(reduced, run_golden(path, inputs, "tflm")[0])
        differ += int(np.count_nonzero(single != reduced))
    assert differ > 0


def test_fc_16x8_int32_bias_is_tflm_only(tmp_path):
    """TFLite Micro accumulates a 16x8 FC with an int32 bias in int32 and rounds twice; LiteRT reads
    that bias as int64, so the default (LiteRT) semantics refuse it."""
    c = case16("per_channel", bias="int32")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    g = load_tflite(path, semantics="tflm")
    assert g.ops[0].attrs["rounding"] == "double"
    assert np.unique(compare(path, case_sets(c, g), "tflm")).size > 20
    with pytest.raises(DmxError, match="int32 bias on a 16x8 FULLY_CONNECTED is TFLite Micro's"):
        load_tflite(path)


def test_fc_16x8_int32_bias_type_without_bias(tmp_path):
    """No bias but quantized_bias_type INT32: TFLite Micro's int32 accumulators too; LiteRT ignores it."""
    c = case16("no_bias")
    c.m.sg.operators[0].builtinOptions.quantizedBiasType = 2  # TensorType.INT32
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    for semantics, rounding in (("tflm", "double"), ("tflite", "away")):
        g = load_tflite(path, semantics=semantics)
        assert g.ops[0].attrs["rounding"] == rounding
        assert np.unique(compare(path, case_sets(c, g), semantics)).size > 20


@pytest.mark.parametrize("target", targets16("fully_connected"))
def test_fc_16x8_on_targets(tmp_path, target):
    """LiteRT's and TFLite Micro's semantics on every case, and the int32-bias case (TFLM's only); two int8
    cases in the same build, so that the int8 and int16 kernels are printed side by side."""
    cases = {"int8_base": case("base"), "int8_per_channel": case("per_channel")}
    cases |= {name: case16(name) for name in CASES16}
    cases["int32_bias"] = loaded_case(case16("per_channel", bias="int32"), tmp_path)
    check_targets(tmp_path, target, cases, tflm=list(CASES16))


def test_fc_16x8_weights_are_stored_dense(tmp_path):
    """The 16x8 kernels read dense weights: --format csr stores them dense, saying why; csr asked
    for this very layer is refused."""
    c = case16("base")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    layer = export(g, tmp_path / "out", targets=("c",), fmt="csr", min_sparsity=0.0)["layers"][0]
    assert layer["format"] == "dense" and "16x8 layers have dense kernels only (not csr" in layer["format_reason"]
    with pytest.raises(DmxError, match=r"16x8 \(int16\) layers read dense int8 weights only; these are stored csr"):
        build_layers(g, StoragePolicy(overrides={g.ops[0].name: "csr"}))


def test_fc_16x8_accumulator_bound(tmp_path):
    c = case16("huge_bias", bias_big=2**47)
    with pytest.raises(DmxError, match=r"FULLY_CONNECTED reach .* beyond the 2\*\*47"):
        load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))


def test_fc_16x8_refuses_a_left_shift_of_8(tmp_path):
    """A real multiplier of 200 needs a left shift of 8, more than TFLite's int64 kernel takes."""
    m, x, y = fc_model(s_in=1.0, s_w=1.0, s_out=0.005, wrange=1)
    to_16x8(m)
    with pytest.raises(DmxError, match="requantizes with a left shift of 8; TFLite's int64 kernel takes at most 7"):
        load_tflite(save(m, tmp_path, [x], [y]))
