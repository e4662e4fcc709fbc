"""DEPTHWISE_CONV_2D edge cases: depth multiplier, strides with SAME padding, dilation, scales."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, bias, check_case, weights
from ._targets import check_targets, targets
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
