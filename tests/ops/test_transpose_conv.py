"""TRANSPOSE_CONV: strides 1 to 3, SAME and VALID, odd sizes, per-channel and per-tensor weights,
with and without bias, fused activations; the PyTorch ConvTranspose2d path; the refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._16x8 import loaded_case, to_16x8
from ._harness import Case, bias, check_case, save, weights
from ._targets import check_targets, targets, targets16

VALID_ATTRS = [{"stride": (2, 2), "pad": (0, 1), "input_offset": 128, "output_offset": -3,
                "multiplier": np.array([1 << 30, 1 << 29], np.int32), "shift": np.array([-3, -4], np.int32),
                "activation": "NONE", "act_min": -128, "act_max": 127}]


def out_size(size: int, k: int, stride: int, padding: str) -> int:
    """The output size TensorFlow gives conv2d_transpose (written out here, not taken from the frontend)."""
    return size * stride if padding == "SAME" else (size - 1) * stride + k


def tconv_model(seed=0, *, n=1, h=5, w=5, cin=3, cout=4, k=(3, 3), stride=(2, 2), padding="SAME", per_channel=True,
                zp_in=-5, zp_out=3, act="NONE", with_bias=True, out_hw=None, bias_slot=True, quant_out=None):
    rng = np.random.default_rng(seed)
    kh, kw = k
    taps = -(-kh // stride[0]) * -(-kw // stride[1]) * cin  # taps that land on one output pixel
    s_in, s_out = 0.02, 0.05
    base = s_out * 40 / (s_in * np.sqrt(taps) * 74 * 74)
    s_w = (base * rng.uniform(0.5, 2.0, cout) if per_channel else np.array([base])).astype(np.float32)
    oh, ow = out_hw or (out_size(h, kh, stride[0], padding), out_size(w, kw, stride[1], padding))
    m = ModelBuilder()
    shape = m.tensor("output_shape", [4], "int32", data=[n, oh, ow, cout])
    wt = m.tensor("w", [cout, kh, kw, cin], scale=s_w, zero_point=np.zeros(s_w.size), axis=0,
                  data=weights(rng, (cout, kh, kw, cin)))
    x = m.tensor("x", [n, h, w, cin], scale=s_in, zero_point=zp_in)
    ins = [shape, wt, x]
    if with_bias:
        ins.append(m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(s_w.size),
                            data=bias(rng, cout, int(np.sqrt(taps) * 4000))))
    elif bias_slot:
        ins.append(-1)
    y = m.tensor("y", [n, oh, ow, cout], **(quant_out or {"scale": s_out, "zero_point": zp_out}))
    m.op("TRANSPOSE_CONV", ins, [y], padding=padding, strideH=stride[0], strideW=stride[1],
         fusedActivationFunction=act)
    return m, x, y


CASES = {
    "same_s1": {"stride": (1, 1)},
    "valid_s1": {"stride": (1, 1), "padding": "VALID"},
    "same_s2": {},
    "valid_s2_odd": {"h": 5, "w": 4, "padding": "VALID"},
    "same_s3": {"stride": (3, 3), "h": 3, "w": 4},
    "valid_s3_k2": {"stride": (3, 3), "k": (2, 2), "padding": "VALID", "h": 4, "w": 3},
    "k4_s2_same": {"k": (4, 4), "h": 4, "w": 3},  # the usual 2x upsampling kernel
    "k2_s2_valid": {"k": (2, 2), "padding": "VALID", "cin": 5, "cout": 2},
    "k5x3_s2x1": {"k": (5, 3), "stride": (2, 1), "h": 3, "w": 6},
    "k1_s2": {"k": (1, 1), "h": 3, "w": 3},  # taps land on every other pixel: zeros plus bias between
    "odd_output": {"out_hw": (9, 11), "h": 5, "w": 6},  # SAME from the output: 9 = ceil(9 / 2) = 5
    "per_tensor": {"per_channel": False},
    "no_bias": {"with_bias": False},
    "no_bias_slot": {"with_bias": False, "bias_slot": False},
    "relu": {"act": "RELU", "zp_out": -20},
    "relu6": {"act": "RELU6", "zp_out": -100},
    "zp_in_127": {"zp_in": 127},
    "batch2": {"n": 2, "h": 3, "w": 4},
}
TFLM = ["same_s2", "valid_s2_odd", "same_s3", "k4_s2_same", "per_tensor", "no_bias", "relu", "batch2"]


def case(name: str) -> Case:
    m, x, y = tconv_model(**CASES[name])
    return Case(m, [x], [y], n=3, seed=7)


@pytest.mark.parametrize("name", list(CASES))
def test_transpose_conv_matches_tflite(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflite",), min_distinct=20)


@pytest.mark.parametrize("name", TFLM)
def test_transpose_conv_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",), min_distinct=20)


@pytest.mark.parametrize("target", targets("transpose_conv"))
def test_transpose_conv_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_padding_comes_from_the_output_size(tmp_path):
    m, x, y = tconv_model(k=(4, 4), h=4, w=3)  # SAME, stride 2, 8x6 out: total pad 2 -> 1 before
    g = load_tflite(save(m, tmp_path, [x], [y]))
    assert g.ops[0].a.pad == (1, 1) and g.ops[0].a.stride == (2, 2)
    assert [g.tensors[n].name for n in g.ops[0].inputs] == ["x", "w", "b"]


def _refused(tmp_path, m, x, y) -> str:
    with pytest.raises(DmxError) as e:
        load_tflite(save(m, tmp_path, [x], [y]))
    text = str(e.value)
    assert "\n" not in text
    return text


def _hand_model(shape_data=(1, 8, 8, 2), w_shape=(2, 3, 3, 3), y_shape=(1, 8, 8, 2)):
    """A TRANSPOSE_CONV of a 4x4x3 input written field by field, for the refusals."""
    m = ModelBuilder()
    shape = m.tensor("output_shape", [4], "int32", data=None if shape_data is None else list(shape_data))
    wt = m.tensor("w", list(w_shape), scale=[0.01], zero_point=[0], data=np.ones(w_shape))
    x = m.tensor("x", [1, 4, 4, 3], scale=0.02, zero_point=0)
    y = m.tensor("y", list(y_shape), scale=0.05, zero_point=0)
    m.op("TRANSPOSE_CONV", [shape, wt, x], [y], padding="SAME", strideH=2, strideW=2)
    return m, x, y


@pytest.mark.parametrize("kw, message", [
    ({"y_shape": (1, 8, 9, 2)}, "operator 0 (TRANSPOSE_CONV, output 'y'): output_shape [1, 8, 8, 2] differs from "
                                "the output tensor's [1, 8, 9, 2]"),
    ({"shape_data": None}, "operator 0 (TRANSPOSE_CONV, output 'y'): output_shape 'output_shape' must be a "
                           "constant int32 vector of 4"),
    ({"w_shape": (2, 3, 3, 4)}, "operator 0 (TRANSPOSE_CONV, output 'y'): input has 3 channels, weights expect 4"),
])
def test_transpose_conv_refusals_name_the_layer(tmp_path, kw, message):
    assert _refused(tmp_path, *_hand_model(**kw)).endswith(message)


def test_zero_stride_is_refused(tmp_path):
    m, x, y = tconv_model()
    m.sg.operators[0].builtinOptions.strideW = 0
    assert _refused(tmp_path, m, x, y).endswith("(TRANSPOSE_CONV, output 'y'): stride 0 is outside [1, 65536]")


# -- the PyTorch frontend: ConvTranspose2d in a tiny U-Net decoder, with both resizes and a skip -----
class TinyUNet(torch.nn.Module):
    """Conv down, ConvTranspose2d up, nearest and bilinear upsampling, cat with the skip."""

    def __init__(self, align_corners=False, tconv=None):
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.down = torch.nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.deep = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.up = torch.nn.ConvTranspose2d(8, 6, **(tconv or {"kernel_size": 3, "stride": 2, "padding": 1,
                                                                "output_padding": 1}))
        self.bn = torch.nn.BatchNorm2d(6)
        self.near = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.align = align_corners
        self.head = torch.nn.Conv2d(20, 4, 1)

    def forward(self, x):  # [N, 3, 8, 8]
        skip = torch.relu(self.enc(x))  # 8x8
        d = torch.relu(self.down(skip))  # 4x4
        u = torch.relu(self.bn(self.up(torch.relu(self.deep(d)))))  # 2x2 -> 4x4
        u = self.near(u)  # 8x8
        v = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=self.align)  # 8x8
        return self.head(torch.cat([skip, u, v], dim=1))


TORCH_CASES = {"unet_half_pixel": {}, "unet_align_corners": {"align_corners": True},
               "tconv_k4_s2": {"tconv": {"kernel_size": 4, "stride": 2, "padding": 1}},
               "tconv_k3_s3_pad0": {"tconv": {"kernel_size": 3, "stride": 3, "padding": 0, "output_padding": 2}},
               "tconv_k2_s2_out1": {"tconv": {"kernel_size": 2, "stride": 2, "padding": 0}}}


def torch_model(name: str):
    import dmxgen

    torch.manual_seed(0)
    kw = TORCH_CASES[name]
    net = TinyUNet(**kw)
    with torch.no_grad():  # a BatchNorm that does something
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(16, 3, 8, 8)
    if "tconv" in kw:  # other up sizes: the decoder's resizes take the up path to 8x8 by size
        net.near = torch.nn.Upsample(size=(8, 8), mode="nearest")
    m = dmxgen.Model(net.eval()).transform(None)
    with m.calibrating():
        m(x)
    return m.eval(), x


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_transpose_conv_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    from dmxgen.api import reference_outputs

    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    kinds = [op.kind for op in g.ops]
    assert {"transpose_conv", "resize_nearest", "resize_bilinear", "concat"} <= set(kinds), kinds
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"
    assert np.unique(ref).size > 20


def test_torch_transpose_conv_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("unet_half_pixel")
    export_and_verify(save(m, tmp_path / "unet.pt2", x), tmp_path / "c")


@pytest.mark.parametrize("layer, message", [
    (torch.nn.ConvTranspose2d(3, 4, 3, groups=1, dilation=2), r"^layer 'up' \(ConvTranspose2d\): dilation=\(2, 2\) "
                                                              r"is not supported, only 1$"),
    (torch.nn.ConvTranspose2d(4, 4, 3, groups=2), r"^layer 'up' \(ConvTranspose2d\): groups=2 is not supported, "
                                                  r"only 1$"),
])
def test_torch_transpose_conv_refusals(layer, message):
    import dmxgen

    net = torch.nn.Sequential()
    net.add_module("up", layer)
    with pytest.raises(DmxError, match=message):
        dmxgen.Model(net).transform(None)


def test_an_input_size_litert_refuses_runs_as_tflite_micro_runs_it(tmp_path):
    from ._harness import compare, input_sets

    # SAME, stride 2, 8x8 out: LiteRT wants a 4x4 input; TFLite Micro scatters a 6x5 one (taps past the
    # output's edge dropped)
    m, x, y = tconv_model(h=6, w=5, out_hw=(8, 8))
    path = save(m, tmp_path, [x], [y])
    message = ("operator 0 (TRANSPOSE_CONV, output 'y'): input [1, 6, 5, 3] should be 4x4 for output_shape "
               "[1, 8, 8, 4] with this padding and stride (LiteRT refuses it; TFLite Micro runs it: --semantics tflm)")
    with pytest.raises(DmxError) as e:
        load_tflite(path)
    assert str(e.value).endswith(message)
    out = compare(path, input_sets(load_tflite(path, semantics="tflm"), 3, 11), "tflm")
    assert np.unique(out).size > 20


def test_the_cli_refuses_in_one_line_with_exit_2(tmp_path):
    import subprocess
    import sys

    path = save(*_hand_model(y_shape=(1, 8, 9, 2))[:1], tmp_path, [2], [3])
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(path), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and not (tmp_path / "out").exists()
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.strip().endswith("output_shape [1, 8, 8, 2] differs from the output tensor's [1, 8, 9, 2]")


# -- 16x8: int16 activations (zero point 0), int8 weights, int64 bias (frontends/tflite_16x8.py) -----------
# tconv_model's int8 zero points become int16's 0; to_16x8 widens the bias to int64 in the scale s_in / 256 * s_w
CASES16 = ["same_s1", "valid_s1", "same_s2", "valid_s2_odd", "same_s3", "k4_s2_same", "k5x3_s2x1", "k1_s2",
           "odd_output", "per_tensor", "relu", "relu6", "batch2"]


def case16(name: str, **kw) -> Case:
    to16 = {k: kw.pop(k) for k in ("bias", "bias_big") if k in kw}
    m, x, y = tconv_model(**(CASES.get(name, {}) | kw))
    return Case(to_16x8(m, **to16), [x], [y], n=3, seed=7)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", CASES16)
def test_transpose_conv_16x8_matches(tmp_path, name, golden):
    assert check_case(case16(name), tmp_path, goldens=(golden,), min_distinct=20).dtype == np.int16


def test_transpose_conv_16x8_rounds_with_the_reduced_multiplier(tmp_path):
    """The int64 accumulators requantize with the 16-bit multiplier: the Q31 one disagrees on these inputs."""
    from dmxgen.graph.fixedpoint import ROUNDINGS

    c = case16("same_s2")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    op = g.ops[0]
    assert g.tensors[op.inputs[2]].dtype == "int64"
    acc = np.arange(-2**20, 2**20, 997, dtype=np.int64)[:, None]
    m, s = np.asarray(op.a.multiplier, np.int64), np.asarray(op.a.shift, np.int64)
    assert (ROUNDINGS["reduced"](acc, m, s) != ROUNDINGS["double"](acc, m, s)).any()
    check_case(c, tmp_path, goldens=("tflite", "tflm"), min_distinct=20)


def test_transpose_conv_16x8_without_bias_matches_tflm(tmp_path):
    check_case(case16("no_bias"), tmp_path, goldens=("tflm",), min_distinct=20)


def test_transpose_conv_16x8_bias_beyond_int32(tmp_path):
    """+-2^33 on alternate channels' bias: held in int64 end to end."""
    out = check_case(case16("big_bias", bias_big=2**33), tmp_path, goldens=("tflite", "tflm"))
    assert (out == 32767).any() and (out == -32768).any()


def test_transpose_conv_16x8_refuses_an_int32_bias(tmp_path):
    m, x, y = tconv_model()
    c = Case(to_16x8(m, bias="int32"), [x], [y])
    message = ("(TRANSPOSE_CONV, output 'y'): bias 'b' of a 16x8 TRANSPOSE_CONV is int32; LiteRT and TFLite Micro "
               "read it as int64: it must be int64")
    for semantics in ("tflite", "tflm"):
        with pytest.raises(DmxError) as e:
            load_tflite(save(c.m, tmp_path, c.inputs, c.outputs), semantics=semantics)
        assert str(e.value).endswith(message) and "\n" not in str(e.value)


def test_transpose_conv_16x8_accumulator_bound(tmp_path):
    c = case16("huge_bias", bias_big=2**47)
    with pytest.raises(DmxError, match=r"TRANSPOSE_CONV reach .* beyond the 2\*\*47"):
        load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))


@pytest.mark.parametrize("target", targets16("transpose_conv"))
def test_transpose_conv_16x8_on_targets(tmp_path, target):
    """With two int8 cases in the same build: the int8 and int16 kernels (two structs) side by side."""
    cases = {"int8_same_s2": case("same_s2"), "int8_no_bias": case("no_bias")}
    cases |= {name: case16(name) for name in CASES16}
    cases["no_bias"] = loaded_case(case16("no_bias"), tmp_path)
    cases["big_bias"] = case16("big_bias", bias_big=2**33)
    check_targets(tmp_path, target, cases)
