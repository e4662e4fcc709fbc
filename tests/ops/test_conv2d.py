"""CONV_2D edge cases: padding, strides, dilation, kernel shapes, scales, zero points, activations."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._16x8 import loaded_case, to_16x8
from ._harness import Case, bias, case_sets, check, check_case, compare, save, weights
from ._targets import check_targets, targets, targets16


def out_size(size: int, k: int, stride: int, dil: int, padding: str) -> int:
    """TFLite's output size rule (written out here, not taken from the frontend)."""
    eff = (k - 1) * dil + 1
    return -(-size // stride) if padding == "SAME" else -(-(size - eff + 1) // stride)


def conv_model(seed=0, *, n=1, h=8, w=8, cin=3, cout=4, k=(3, 3), stride=(1, 1), dil=(1, 1), padding="SAME",
               per_channel=True, zp_in=-128, zp_out=-128, act="NONE", with_bias=True, spread=1.0,
               s_in=0.02, s_out=0.05):
    """One CONV_2D whose weight scales put typical outputs near +-40 LSB (times `spread`)."""
    rng = np.random.default_rng(seed)
    kh, kw = k
    taps = kh * kw * cin
    base = s_out * 40 * spread / (s_in * np.sqrt(taps) * 74 * 74)
    s_w = (base * rng.uniform(0.5, 2.0, cout) if per_channel else np.array([base])).astype(np.float32)
    m = ModelBuilder()
    x = m.tensor("x", [n, h, w, cin], scale=s_in, zero_point=zp_in)
    wt = m.tensor("w", [cout, kh, kw, cin], scale=s_w, zero_point=np.zeros(s_w.size), axis=0,
                  data=weights(rng, (cout, kh, kw, cin)))
    ins = [x, wt]
    if with_bias:
        ins.append(m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(s_w.size),
                            data=bias(rng, cout, int(np.sqrt(taps) * 4000))))
    # No bias: two inputs. A third input of -1 makes LiteRT's CONV_2D fail to prepare
    # ("Tensor at index 2 was optional but was expected").
    oh = out_size(h, kh, stride[0], dil[0], padding)
    ow = out_size(w, kw, stride[1], dil[1], padding)
    y = m.tensor("y", [n, oh, ow, cout], scale=s_out, zero_point=zp_out)
    m.op("CONV_2D", ins, [y], padding=padding, strideH=stride[0], strideW=stride[1],
         dilationHFactor=dil[0], dilationWFactor=dil[1], fusedActivationFunction=act)
    return m, x, y


CASES = {
    "same_s1": {},
    "valid_s1": {"padding": "VALID"},
    "same_s2_odd": {"h": 9, "w": 9, "stride": (2, 2)},
    "same_s2_even": {"stride": (2, 2)},
    "valid_s2_odd": {"h": 9, "w": 7, "stride": (2, 2), "padding": "VALID"},
    "same_s3_odd": {"h": 11, "w": 10, "stride": (3, 3)},
    "same_s3_even": {"h": 12, "w": 8, "stride": (3, 3)},
    "valid_s3": {"h": 11, "w": 10, "stride": (3, 3), "padding": "VALID"},
    "stride_1x2": {"h": 7, "w": 9, "stride": (1, 2)},
    "dilation2_same": {"h": 9, "w": 9, "dil": (2, 2)},
    "dilation2_valid": {"h": 9, "w": 10, "dil": (2, 2), "padding": "VALID"},
    "dilation2x1_s2": {"h": 10, "w": 9, "dil": (2, 1), "stride": (2, 2)},
    "k1x1": {"k": (1, 1), "cin": 8, "cout": 6},
    "k1x1_s2_odd": {"k": (1, 1), "h": 7, "w": 7, "stride": (2, 2)},
    "k2x2_same": {"k": (2, 2)},  # even kernel: SAME pads only after
    "k1x3": {"k": (1, 3)},
    "k3x1_s2": {"k": (3, 1), "stride": (2, 2), "h": 9},
    "k2x5_same": {"k": (2, 5), "h": 6, "w": 11},
    "k5x5_s2_same": {"k": (5, 5), "h": 10, "w": 9, "stride": (2, 2), "cin": 2},
    "kernel_is_image": {"k": (4, 4), "h": 4, "w": 4, "padding": "VALID", "cout": 7},
    "per_tensor": {"per_channel": False},
    "per_tensor_s2": {"per_channel": False, "stride": (2, 2), "h": 9},
    "zp_in_0": {"zp_in": 0},
    "zp_in_127": {"zp_in": 127},
    "zp_out_127": {"zp_out": 127},
    "zp_in_127_out_127": {"zp_in": 127, "zp_out": 127, "per_channel": False},
    "relu": {"act": "RELU", "zp_out": -20},
    "relu_zp_m128": {"act": "RELU"},
    "relu6": {"act": "RELU6", "zp_out": -100, "s_out": 0.03, "spread": 2.0},
    "relu6_clips_high": {"act": "RELU6", "zp_out": -128, "s_out": 0.01, "spread": 2.0},
    "relu_n1_to_1": {"act": "RELU_N1_TO_1", "zp_out": 0, "s_out": 0.004},
    "relu_n1_to_1_zp127": {"act": "RELU_N1_TO_1", "zp_out": 127, "s_out": 0.01},
    "batch2": {"n": 2, "h": 7, "w": 6, "stride": (2, 2)},
    "batch2_valid_dil": {"n": 2, "h": 9, "w": 9, "padding": "VALID", "dil": (2, 2)},
    # Large multipliers: most outputs clip, and real multipliers > 1 give positive shifts.
    "saturate_x8": {"spread": 8.0},
    "saturate_shift_positive": {"spread": 2000.0, "zp_out": 0, "k": (1, 1)},
    "saturate_relu6": {"spread": 8.0, "act": "RELU6", "s_out": 0.03, "zp_out": -100},
    "tiny_multiplier": {"spread": 0.02, "zp_out": 3},
}


def case(name: str, n: int = 6, seed: int = 1) -> Case:
    m, x, y = conv_model(seed=len(name), **CASES[name])
    return Case(m, [x], [y], n=n, seed=seed)


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_matches_litert(tmp_path, name):
    check_case(case(name), tmp_path)


TFLM = ["same_s2_odd", "dilation2_same", "k2x5_same", "per_tensor", "zp_in_127", "relu6", "relu_n1_to_1", "batch2",
        "saturate_x8"]


@pytest.mark.parametrize("name", TFLM)
def test_conv2d_matches_tflm(tmp_path, name):
    check_case(case(name, n=4, seed=2), tmp_path, goldens=("tflm",))


# LiteRT rejects int8 CONV_2D without a bias ("conv.cc:411 has_bias was not true"),
# so the bias-less cases are checked against TFLite Micro only.
NO_BIAS = [{}, {"stride": (2, 2), "h": 9, "per_channel": False, "zp_in": 5},
           {"k": (1, 1), "zp_in": 127, "act": "RELU", "zp_out": -30}]


def no_bias_case(kw: dict) -> Case:
    m, x, y = conv_model(seed=4, with_bias=False, **kw)
    return Case(m, [x], [y], n=6, seed=3)


@pytest.mark.parametrize("kw", NO_BIAS)
def test_conv2d_without_bias_matches_tflm(tmp_path, kw):
    check_case(no_bias_case(kw), tmp_path, goldens=("tflm",))


def test_saturation_case_really_saturates(tmp_path):
    """The saturation case is worth something only if outputs hit both rails."""
    m, x, y = conv_model(seed=3, spread=8.0)
    out = check(m, tmp_path, [x], [y], n=6, seed=1)
    assert (out == 127).mean() > 0.1 and (out == -128).mean() > 0.1


def random_conv_cases(count: int, seed: int) -> list[dict]:
    """Seeded random configurations on top of the hand-picked ones above."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        kh, kw = (int(v) for v in rng.integers(1, 6, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        dil = (1, 1) if max(stride) > 1 or rng.random() < 0.5 else tuple(int(v) for v in rng.integers(1, 4, 2))
        h = int(rng.integers((kh - 1) * dil[0] + 1, 13))
        w = int(rng.integers((kw - 1) * dil[1] + 1, 13))
        cases.append({"h": h, "w": w, "k": (kh, kw), "stride": stride, "dil": dil,
                      "padding": str(rng.choice(["SAME", "VALID"])), "cin": int(rng.integers(1, 6)),
                      "cout": int(rng.integers(1, 6)), "per_channel": bool(rng.random() < 0.7),
                      "zp_in": int(rng.choice([-128, -5, 0, 127])), "zp_out": int(rng.integers(-128, 128)),
                      "act": str(rng.choice(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])),
                      "s_out": float(rng.choice([0.004, 0.03, 0.05])), "spread": float(rng.choice([0.5, 1.0, 4.0])),
                      "n": int(rng.choice([1, 1, 2]))})
    return cases


def random_case(kw: dict) -> Case:
    m, x, y = conv_model(seed=5, **kw)
    return Case(m, [x], [y], n=3, seed=4)


RANDOM = random_conv_cases(24, seed=2024)


@pytest.mark.parametrize("kw", RANDOM, ids=lambda kw: f"{kw['k']}s{kw['stride']}d{kw['dil']}")
def test_conv2d_random_configurations(tmp_path, kw):
    check_case(random_case(kw), tmp_path, goldens=("tflite", "tflm"), min_distinct=1)


@pytest.mark.parametrize("target", targets("conv2d"))
def test_conv2d_on_targets(tmp_path, target):
    """Every case above on each target conv2d declares; those checked against TFLM with its semantics too."""
    cases = {name: case(name) for name in CASES}
    cases |= {f"no_bias{i}": no_bias_case(kw) for i, kw in enumerate(NO_BIAS)}
    cases |= {f"random{i}": random_case(kw) for i, kw in enumerate(RANDOM)}
    check_targets(tmp_path, target, cases, tflm=TFLM + [f"no_bias{i}" for i in range(len(NO_BIAS))])


def test_harness_notices_one_lsb(tmp_path, monkeypatch):
    """A reference off by one on a single value must fail the comparison."""
    from dmxgen import reference

    original = reference.KERNELS["conv2d"]

    def off_by_one(op, args, out_t):
        y = np.asarray(original(op, args, out_t)).astype(np.int16)
        y.reshape(-1)[3] += 1 if y.reshape(-1)[3] < 127 else -1
        return y

    monkeypatch.setitem(reference.KERNELS, "conv2d", off_by_one)
    m, x, y = conv_model(seed=1)
    with pytest.raises(AssertionError, match=r"differs from golden .* at 1 positions"):
        check(m, tmp_path, [x], [y], n=1, seed=1)


# -- 16x8: int16 activations (zero point 0), int8 weights, int64 bias (frontends/tflite_16x8.py) -----------
# name -> (conv_model kwargs, to_16x8 kwargs); conv_model's int8 zero points become int16's 0
CASES16 = {
    "same_s1": ({}, {}),
    "valid_s1": ({"padding": "VALID"}, {}),
    "same_s2_odd": ({"h": 9, "w": 9, "stride": (2, 2)}, {}),
    "valid_s2_odd": ({"h": 9, "w": 7, "stride": (2, 2), "padding": "VALID"}, {}),
    "stride_1x2": ({"h": 7, "w": 9, "stride": (1, 2)}, {}),
    "dilation2_same": ({"h": 9, "w": 9, "dil": (2, 2)}, {}),
    "dilation2x1_s2": ({"h": 10, "w": 9, "dil": (2, 1), "stride": (2, 2)}, {}),
    "k1x1_direct": ({"k": (1, 1), "cin": 8, "cout": 6}, {}),
    "k1x1_s2_odd": ({"k": (1, 1), "h": 7, "w": 7, "stride": (2, 2)}, {}),
    "k2x5_same": ({"k": (2, 5), "h": 6, "w": 11}, {}),
    "per_tensor": ({"per_channel": False}, {}),
    "relu": ({"act": "RELU"}, {}),
    "relu6": ({"act": "RELU6", "s_out": 0.1, "spread": 0.5}, {}),  # 6 / s_out: 15360, inside int16
    "relu_n1_to_1": ({"act": "RELU_N1_TO_1", "s_out": 0.05, "spread": 0.2}, {}),  # +-1: +-5120
    "batch2": ({"n": 2, "h": 7, "w": 6, "stride": (2, 2)}, {}),
    "saturate": ({"spread": 8.0}, {}),
    # +-2^33 on alternate channels: outputs near +-20000, the inputs' share some 20 LSB
    "bias_beyond_int32": ({"spread": 1.7e-3}, {"bias_big": 2**33}),
}


def case16(name: str, seed: int = 1, **kw) -> Case:
    model_kw, to16 = CASES16.get(name, ({}, {}))
    conv = {k: kw.pop(k) for k in ("bias", "bias_big") if k in kw}
    m, x, y = conv_model(seed=len(name), **(model_kw | kw))
    return Case(to_16x8(m, **(to16 | conv)), [x], [y], n=4, seed=seed)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES16))
def test_conv2d_16x8_matches(tmp_path, name, golden):
    check_case(case16(name), tmp_path, goldens=(golden,), min_distinct=20)


def test_conv2d_16x8_saturates_at_the_int16_rails(tmp_path):
    out = check_case(case16("saturate"), tmp_path)
    assert (out == 32767).mean() > 0.1 and (out == -32768).mean() > 0.1


def test_conv2d_16x8_without_bias_matches_tflm(tmp_path):
    """LiteRT refuses CONV_2D without a bias (16x8 too); TFLite Micro accumulates in int64."""
    check_case(case16("no_bias", with_bias=False, stride=(2, 2), h=9), tmp_path, goldens=("tflm",), min_distinct=20)


def test_conv2d_16x8_int32_bias_type_without_bias(tmp_path):
    """No bias but quantized_bias_type INT32: TFLite Micro's int32 accumulators, double rounding."""
    c = case16("no_bias_int32", with_bias=False, per_channel=True)
    c.m.sg.operators[0].builtinOptions.quantizedBiasType = 2  # TensorType.INT32
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    g = load_tflite(path, semantics="tflm")
    assert g.ops[0].attrs["rounding"] == "double"
    assert np.unique(compare(path, case_sets(c, g), "tflm")).size > 20


def test_conv2d_16x8_int32_bias_is_tflm_only(tmp_path):
    """TFLite Micro's int32-bias 16x8 CONV_2D accumulates in int32 and rounds twice; LiteRT reads
    the bias as int64, so the default (LiteRT) semantics refuse it."""
    c = case16("int32_bias", bias="int32")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    g = load_tflite(path, semantics="tflm")
    assert g.ops[0].attrs["rounding"] == "double"
    assert np.unique(compare(path, case_sets(c, g), "tflm")).size > 20
    with pytest.raises(DmxError, match="int32 bias on a 16x8 CONV_2D is TFLite Micro's"):
        load_tflite(path)


def test_conv2d_16x8_accumulator_bound(tmp_path):
    c = case16("huge_bias", bias_big=2**47)
    with pytest.raises(DmxError, match=r"CONV_2D reach .* beyond the 2\*\*47"):
        load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))


@pytest.mark.parametrize("target", targets16("conv2d"))
def test_conv2d_16x8_on_targets(tmp_path, target):
    """With two int8 cases in the same build: the int8 and int16 kernels printed side by side."""
    cases = {"int8_same_s1": case("same_s1"), "int8_k1x1": case("k1x1")}
    cases |= {name: case16(name) for name in CASES16}
    cases["no_bias"] = case16("no_bias", with_bias=False, stride=(2, 2), h=9)
    cases["int32_bias"] = loaded_case(case16("int32_bias", bias="int32"), tmp_path)
    check_targets(tmp_path, target, cases)
