"""DEPTHWISE_CONV_2D edge cases: depth multiplier, strides with SAME padding, dilation, scales."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._16x8 import to_16x8
from ._harness import Case, bias, check_case, save, weights
from ._targets import check_targets, targets, targets16
from .test_conv2d import out_size


def dw_model(seed=0, *, n=1, h=8, w=8, cin=4, mult=1, k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME",
             per_channel=True, zp_in=-128, zp_out=-128, act="NONE", spread=1.0, s_in=0.02, s_out=0.05,
             with_bias=True):
    rng = np.random.default_rng(seed)
    kh, kw = k
    cout = cin * mult
    base = s_out * 40 * spread / (s_in * np.sqrt(kh * kw) * 74 * 74)
    s_w = (base * rng.uniform(0.5, 2.0, cout) if per_channel else np.array([base])).astype(np.float32)
    m = ModelBuilder()
    x = m.tensor("x", [n, h, w, cin], scale=s_in, zero_point=zp_in)
    wt = m.tensor("w", [1, kh, kw, cout], scale=s_w, zero_point=np.zeros(s_w.size), axis=3,
                  data=weights(rng, (1, kh, kw, cout)))
    ins = [x, wt]
    if with_bias:
        ins.append(m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(s_w.size),
                            data=bias(rng, cout, int(np.sqrt(kh * kw) * 4000))))
    y = m.tensor("y", [n, out_size(h, kh, stride[0], dil[0], padding), out_size(w, kw, stride[1], dil[1], padding),
                       cout], scale=s_out, zero_point=zp_out)
    m.op("DEPTHWISE_CONV_2D", ins, [y], padding=padding, strideH=stride[0], strideW=stride[1],
         depthMultiplier=mult, dilationHFactor=dil[0], dilationWFactor=dil[1], fusedActivationFunction=act)
    return m, x, y


CASES = {
    "mult1_same": {},
    "mult1_valid": {"padding": "VALID", "h": 9},
    "mult2": {"mult": 2, "cin": 3},
    "mult2_s2_same_odd": {"mult": 2, "cin": 3, "h": 9, "w": 7, "stride": (2, 2)},
    "mult3_valid": {"mult": 3, "cin": 2, "padding": "VALID"},
    "s2_same_even": {"stride": (2, 2)},
    "s2_same_odd": {"stride": (2, 2), "h": 9, "w": 11},
    "s3_same": {"stride": (3, 3), "h": 10, "w": 11},
    "dilation2_same": {"dil": (2, 2), "h": 9},
    "dilation2_valid_mult2": {"dil": (2, 2), "padding": "VALID", "h": 10, "mult": 2, "cin": 2},
    "dilation_1x3": {"dil": (1, 3), "w": 12},
    "k5x5_s2": {"k": (5, 5), "stride": (2, 2), "h": 10, "w": 10},
    "k1x3": {"k": (1, 3)},
    "per_tensor": {"per_channel": False},
    "zp_in_127": {"zp_in": 127, "zp_out": 127},
    "zp_in_0_relu6": {"zp_in": 0, "act": "RELU6", "s_out": 0.03, "zp_out": -100, "spread": 2.0},
    "relu": {"act": "RELU", "zp_out": -10},
    "relu_n1_to_1": {"act": "RELU_N1_TO_1", "s_out": 0.005, "zp_out": 0},
    "batch2": {"n": 2, "stride": (2, 2), "h": 7, "w": 6},
    "saturate": {"spread": 8.0},
}


def case(name: str, n: int = 6, seed: int = 1) -> Case:
    m, x, y = dw_model(seed=len(name) + 7, **CASES[name])
    return Case(m, [x], [y], n=n, seed=seed)


@pytest.mark.parametrize("name", list(CASES))
def test_depthwise_matches_litert(tmp_path, name):
    check_case(case(name), tmp_path)


TFLM = ["mult2_s2_same_odd", "dilation2_valid_mult2", "per_tensor", "zp_in_127", "zp_in_0_relu6", "batch2", "saturate"]


@pytest.mark.parametrize("name", TFLM)
def test_depthwise_matches_tflm(tmp_path, name):
    check_case(case(name, n=4, seed=2), tmp_path, goldens=("tflm",))


def no_bias_case() -> Case:
    m, x, y = dw_model(seed=5, with_bias=False, mult=2, cin=2, stride=(2, 2), h=9)
    return Case(m, [x], [y], n=4, seed=3)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_depthwise_without_bias(tmp_path, golden):
    check_case(no_bias_case(), tmp_path, goldens=(golden,))


def random_case(seed: int) -> Case:
    rng = np.random.default_rng(100 + seed)
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dil = (1, 1) if max(stride) > 1 else tuple(int(v) for v in rng.integers(1, 3, 2))
    kw_ = {"h": int(rng.integers((kh - 1) * dil[0] + 1, 12)), "w": int(rng.integers((kw - 1) * dil[1] + 1, 12)),
           "k": (kh, kw), "stride": stride, "dil": dil, "padding": str(rng.choice(["SAME", "VALID"])),
           "cin": int(rng.integers(1, 5)), "mult": int(rng.integers(1, 4)), "per_channel": bool(rng.random() < 0.7),
           "zp_in": int(rng.choice([-128, 0, 127])), "zp_out": int(rng.integers(-128, 128)),
           "act": str(rng.choice(["NONE", "RELU", "RELU6"])), "spread": float(rng.choice([0.5, 1.0, 4.0]))}
    m, x, y = dw_model(seed=seed, **kw_)
    return Case(m, [x], [y], n=3, seed=5)


@pytest.mark.parametrize("seed", range(12))
def test_depthwise_random_configurations(tmp_path, seed):
    check_case(random_case(seed), tmp_path, goldens=("tflite", "tflm"), min_distinct=1)


@pytest.mark.parametrize("target", targets("depthwise_conv2d"))
def test_depthwise_on_targets(tmp_path, target):
    cases = {name: case(name) for name in CASES} | {"no_bias": no_bias_case()}
    cases |= {f"random{seed}": random_case(seed) for seed in range(12)}
    check_targets(tmp_path, target, cases, tflm=TFLM + ["no_bias"])


# -- 16x8: int16 activations (zero point 0), int8 weights, int64 bias (frontends/tflite_16x8.py) -----------
# name -> (dw_model kwargs, to_16x8 kwargs); dw_model's int8 zero points become int16's 0
CASES16 = {
    "mult1_same": ({}, {}),
    "mult1_valid": ({"padding": "VALID", "h": 9}, {}),
    "mult2_s2_same_odd": ({"mult": 2, "cin": 3, "h": 9, "w": 7, "stride": (2, 2)}, {}),
    "mult3_valid": ({"mult": 3, "cin": 2, "padding": "VALID"}, {}),
    "s3_same": ({"stride": (3, 3), "h": 10, "w": 11}, {}),
    "dilation2_valid_mult2": ({"dil": (2, 2), "padding": "VALID", "h": 10, "mult": 2, "cin": 2}, {}),
    "dilation_1x3": ({"dil": (1, 3), "w": 12}, {}),
    "k5x5_s2": ({"k": (5, 5), "stride": (2, 2), "h": 10, "w": 10}, {}),
    "per_tensor": ({"per_channel": False}, {}),
    "relu": ({"act": "RELU"}, {}),
    "relu6": ({"act": "RELU6", "s_out": 0.1, "spread": 0.5}, {}),  # 6 / s_out: 15360, inside int16
    "relu_n1_to_1": ({"act": "RELU_N1_TO_1", "s_out": 0.05, "spread": 0.2}, {}),  # +-1: +-5120
    "batch2": ({"n": 2, "stride": (2, 2), "h": 7, "w": 6}, {}),
    "saturate": ({"spread": 8.0}, {}),
    "no_bias": ({"with_bias": False, "mult": 2, "cin": 2, "stride": (2, 2), "h": 9}, {}),
    # +-2^33 on alternate channels: outputs near +-20000, the inputs' share some 20 LSB
    "bias_beyond_int32": ({"spread": 9.6e-4}, {"bias_big": 2**33}),
}


def case16(name: str, seed: int = 1, **to16) -> Case:
    kw, conv = CASES16.get(name, ({}, {}))
    m, x, y = dw_model(seed=len(name) + 7, **kw)
    return Case(to_16x8(m, **(conv | to16)), [x], [y], n=4, seed=seed)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES16))
def test_depthwise_16x8_matches(tmp_path, name, golden):
    check_case(case16(name), tmp_path, goldens=(golden,), min_distinct=20)


def test_depthwise_16x8_saturates_at_the_int16_rails(tmp_path):
    out = check_case(case16("saturate"), tmp_path)
    assert (out == 32767).mean() > 0.1 and (out == -32768).mean() > 0.1


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
def test_depthwise_16x8_refuses_an_int32_bias(tmp_path, semantics):
    """LiteRT refuses it (depthwise_conv.cc: INT32 != INT64) and TFLite Micro reads it as int64."""
    c = case16("mult1_same", bias="int32")
    with pytest.raises(DmxError, match="int32 bias on a 16x8 DEPTHWISE_CONV_2D is not supported"):
        load_tflite(save(c.m, tmp_path, c.inputs, c.outputs), semantics=semantics)


@pytest.mark.parametrize("target", targets16("depthwise_conv2d"))
def test_depthwise_16x8_on_targets(tmp_path, target):
    """With two int8 cases in the same build: the int8 (MVE on the M55) and int16 kernels side by side."""
    cases = {"int8_mult2": case("mult2"), "int8_per_tensor": case("per_tensor")}
    check_targets(tmp_path, target, cases | {name: case16(name) for name in CASES16})


# -- the MVE kernel's edges (templates/c/kernels/depthwise_conv2d_mve.c.j2) --------------------------------
# channels 1/15/16/17/33 (predicated tails, pointer groups), depth multipliers on one input channel
# (up to micro_speech's 10x8 window), kernels 1x1/3x3/5x5, strides, padding on every side, dilation,
# rows narrower than a block and wide enough for several, clamps other than the int8 rails
MVE_CASES = {
    "c1": {"cin": 1, "h": 6, "w": 7},
    "c15_wide": {"cin": 15, "h": 5, "w": 13},
    "c16_s2": {"cin": 16, "h": 9, "w": 13, "stride": (2, 2)},
    "c17_k5": {"cin": 17, "k": (5, 5), "h": 7, "w": 10},
    "c33_k1": {"cin": 33, "k": (1, 1), "h": 3, "w": 9},
    "c33_dil2": {"cin": 33, "dil": (2, 2), "h": 9, "w": 12},
    "c64_narrow": {"cin": 64, "h": 7, "w": 5},
    "c64_wide": {"cin": 64, "h": 4, "w": 14},
    "c8_wide_s1": {"cin": 8, "h": 5, "w": 18},
    "c20_s2_valid": {"cin": 20, "h": 8, "w": 17, "stride": (2, 2), "padding": "VALID"},
    "c12_dil2_valid": {"cin": 12, "dil": (2, 2), "h": 9, "w": 11, "padding": "VALID"},
    "c6_k5_s2_zp127": {"cin": 6, "k": (5, 5), "h": 9, "w": 12, "stride": (2, 2), "zp_in": 127},
    "c17_relu6": {"cin": 17, "h": 6, "w": 9, "act": "RELU6", "zp_in": 0, "s_out": 0.03, "zp_out": -100},
    "c16_per_tensor_batch2": {"cin": 16, "n": 2, "h": 5, "w": 6, "per_channel": False},
    "in1_mult2": {"cin": 1, "mult": 2, "h": 6, "w": 9},
    "in1_mult5_s2": {"cin": 1, "mult": 5, "h": 7, "w": 10, "stride": (2, 2)},
    "in1_mult8": {"cin": 1, "mult": 8, "h": 6, "w": 11},
    "in1_mult8_k10x8_s2": {"cin": 1, "mult": 8, "k": (10, 8), "h": 14, "w": 12, "stride": (2, 2)},
    "in1_mult12_dil2": {"cin": 1, "mult": 12, "h": 9, "w": 10, "dil": (2, 2)},
    "in3_mult2": {"cin": 3, "mult": 2, "h": 5, "w": 7},  # the scalar kernel under MVE too
}


def mve_case(name: str) -> Case:
    m, x, y = dw_model(seed=len(name) + 31, **MVE_CASES[name])
    return Case(m, [x], [y], n=1, seed=7, extremes=False)


@pytest.mark.slow  # 20 firmware builds (80 s): `make test-slow`; the m55 target above samples the kernel's paths
@pytest.mark.parametrize("target", [p for p in targets("depthwise_conv2d") if p.values[0] == "m55"])
def test_depthwise_mve_edges_on_m55(tmp_path, target):
    """Every case (not a sample): the MVE and the -DDMX_NO_MVE build both equal the reference."""
    from ._targets import build_zoo, run_m55

    zoo = build_zoo(tmp_path, {name: mve_case(name) for name in MVE_CASES}, target)
    run_m55(zoo, tmp_path, scalar_too=True)
