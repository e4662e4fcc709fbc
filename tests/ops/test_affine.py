"""affine: a per-channel scale and shift, requantized per channel as a conv is.

No TFLite operator is an affine op, but a 1x1 DEPTHWISE_CONV_2D computes exactly its integers
(one tap per channel: (x + input_offset) * w_c + b_c, per-channel multipliers, double rounding):
the goldens check the reference on that twin. The torch side lowers a BatchNorm that cannot be
folded (after a residual add, before a ReLU and a conv, on a tensor with several users) and
dmxgen.compress.Affine (ResMLP's learned alpha * x + beta) to it, bit-exact with the
fake-quantized model.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen import reference
from dmxgen.compress import Affine
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph import Graph, Op, QuantParams, Tensor
from dmxgen.graph.fixedpoint import multiply_by_quantized_multiplier

from ._harness import Case, input_sets, save
from ._targets import check_targets, targets
from ._torch import assert_codes_agree
from .test_depthwise_conv2d import dw_model

VALID_ATTRS = [{"input_offset": 3, "output_offset": -5, "weight": (127, -127, 3), "bias": (10, 0, -7),
                "multiplier": (1 << 30, 1 << 30, 1 << 29), "shift": (-3, -2, 0), "activation": "NONE",
                "act_min": -128, "act_max": 127},
               {"input_offset": 0, "output_offset": 0, "weight": np.array([20000], np.int64), "bias": (0,),
                "multiplier": (1 << 30,), "shift": (-12,), "activation": "RELU", "act_min": 0, "act_max": 127,
                "weight_bits": 16}]


def affine_graph(shape, attrs: dict, q_in=(0.05, -7), q_out=(0.04, 10)) -> Graph:
    g = Graph(source="affine test")
    g.add_tensor(Tensor("x", shape, "int8", QuantParams(np.array([q_in[0]], np.float32), np.array([q_in[1]]))))
    g.add_tensor(Tensor("y", shape, "int8", QuantParams(np.array([q_out[0]], np.float32), np.array([q_out[1]]))))
    g.ops.append(Op("affine_0", "affine", ["x"], ["y"], attrs))
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    return g


def from_depthwise(dw: Graph) -> Graph:
    """The affine op with the integers of a 1x1 depthwise conv (its twin in TFLite)."""
    op = dw.ops[0]
    w, b = dw.tensors[op.inputs[1]].data.reshape(-1), dw.tensors[op.inputs[2]].data
    a = op.a
    attrs = {"input_offset": a.input_offset, "output_offset": a.output_offset, "weight": w.astype(np.int64),
             "bias": b.astype(np.int64), "multiplier": np.asarray(a.multiplier, np.int64),
             "shift": np.asarray(a.shift, np.int64), "activation": a.activation, "act_min": a.act_min,
             "act_max": a.act_max}
    x, y = (dw.tensors[n] for n in (op.inputs[0], op.outputs[0]))
    return affine_graph(x.shape, attrs, (float(x.quant.s), x.quant.zp), (float(y.quant.s), y.quant.zp))


DW_CASES = {
    "c4": {},
    "c7_rows": {"cin": 7, "h": 3, "w": 5},
    "zp_in_127": {"zp_in": 127, "zp_out": 127},
    "zp_in_0_relu6": {"zp_in": 0, "act": "RELU6", "s_out": 0.03, "zp_out": -100, "spread": 2.0},
    "relu": {"act": "RELU", "zp_out": -10},
    "saturate": {"spread": 8.0},
    "batch2": {"n": 2, "h": 3, "w": 2},
}


def dw_case(name: str):
    return dw_model(seed=len(name), k=(1, 1), padding="VALID", **DW_CASES[name])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(DW_CASES))
def test_affine_equals_a_one_by_one_depthwise_conv_in_the_goldens(tmp_path, name, golden):
    m, x, y = dw_case(name)
    path = save(m, tmp_path, [x], [y])
    g = from_depthwise(load_tflite(path, semantics=golden))
    outs = []
    for inputs in input_sets(g, 4, seed=9):
        want = run_golden(path, inputs, golden)[0]
        got = reference.run(g, inputs)["y"]
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
        outs.append(got)
    assert np.unique(np.stack(outs)).size > 3


def int16_graph() -> Graph:
    """int16 weight codes (a channel whose scale is far from the others' needs no int16 in
    dmxgen's own lowering, but the op takes them): weights up to 30000, biases of 10^6."""
    rng = np.random.default_rng(4)
    c = 5
    return affine_graph((1, 2, 3, c), {
        "input_offset": 12, "output_offset": -3, "weight": rng.integers(-30000, 30001, c),
        "bias": rng.integers(-10**6, 10**6, c), "multiplier": rng.integers(1 << 30, 1 << 31, c),
        "shift": np.full(c, -14), "activation": "NONE", "act_min": -128, "act_max": 127, "weight_bits": 16})


def case(name: str) -> Case:
    if name == "int16_weights":
        return Case(int16_graph(), [], [], n=4, seed=2)
    if name in TORCH_CASES:
        m, x = torch_model(name)
        return Case(m.to_graph(x[:1]), [], [], n=3, seed=2)
    m, x, y = dw_case(name)
    with tempfile.TemporaryDirectory() as d:
        return Case(from_depthwise(load_tflite(save(m, Path(d), [x], [y]))), [], [], n=3, seed=2)


def test_int16_weights_reach_the_accumulator_unclipped():
    g = int16_graph()
    x = input_sets(g, 1, seed=1)[0][0]
    a = g.ops[0].a
    acc = (x.astype(np.int64) + a.input_offset) * np.asarray(a.weight) + np.asarray(a.bias)
    want = np.clip(multiply_by_quantized_multiplier(acc, np.asarray(a.multiplier), np.asarray(a.shift)) - 3, -128, 127)
    assert np.array_equal(reference.run(g, [x])["y"], want)
    assert np.abs(np.asarray(a.weight)).max() > 127


# -- the PyTorch frontend ----------------------------------------------------------------------------
class ResidualBN(nn.Module):
    """A BatchNorm after a residual add: nothing to fold it into (the conv after it pads)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn, self.head = nn.BatchNorm2d(4), nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.a(x))
        return self.head(self.bn(y + self.b(y)))


class PreActivation(nn.Module):
    """BN -> ReLU -> Conv (a pre-activation ResNet block's start), the first layer of the model."""

    def __init__(self):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(torch.relu(self.bn(x)))


class SharedBN1d(nn.Module):
    """A BatchNorm1d on a Linear's output that has a second user (the fold would change it)."""

    def __init__(self):
        super().__init__()
        self.fc, self.bn, self.out = nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3)

    def forward(self, x):
        y = self.fc(x)
        return self.out(self.bn(y) + y)


class ResMLPBlock(nn.Module):
    """ResMLP's pre-normalization Affine and its LayerScale (alpha * x + beta with [dim] parameters)."""

    def __init__(self, dim=6):
        super().__init__()
        self.pre, self.fc, self.scale, self.head = Affine(dim), nn.Linear(dim, dim), Affine(dim), nn.Linear(dim, 3)

    def forward(self, x):  # [N, T, D]
        return self.head(x + self.scale(self.fc(self.pre(x))))


class OwnAffine(nn.Module):
    """ResMLP's own Affine, as its repository writes it (not dmxgen's class)."""

    def __init__(self, dim):
        super().__init__()
        self.alpha, self.beta = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.alpha * x + self.beta


class OwnResMLP(nn.Module):
    """Its Affine and a LayerScale `gamma * x` (a scale without a shift) in a residual branch."""

    def __init__(self, dim=6):
        super().__init__()
        self.norm, self.fc, self.head = OwnAffine(dim), nn.Linear(dim, dim), nn.Linear(dim, 3)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x):
        return self.head(x + self.gamma * self.fc(self.norm(x)))


class ResMLPBlockReLU(ResMLPBlock):
    """The same Affines with a ReLU between each and its Linear: nothing to fold them into."""

    def forward(self, x):  # [N, T, D]
        return self.head(x + self.scale(torch.relu(self.fc(torch.relu(self.pre(x))))))


TORCH_CASES = {"residual_bn": (ResidualBN, (32, 3, 5, 5)), "pre_activation": (PreActivation, (32, 3, 5, 5)),
               "shared_bn1d": (SharedBN1d, (32, 6)), "resmlp": (ResMLPBlock, (32, 4, 6)),
               "own_resmlp": (OwnResMLP, (32, 4, 6)), "resmlp_relu": (ResMLPBlockReLU, (32, 4, 6))}
# affine ops each case exports: an Affine right before or after a Linear folds into it
AFFINE_OPS = {"residual_bn": None, "pre_activation": 1, "shared_bn1d": None, "resmlp": 0, "own_resmlp": 0,
              "resmlp_relu": 2}


def _randomize(net: nn.Module) -> nn.Module:
    """Statistics and parameters far from the identity, so that the affine matters."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.3, 3)
                m.weight.uniform_(-2, 2), m.bias.uniform_(-1, 1)
            elif isinstance(m, (Affine, OwnAffine)):
                m.alpha.uniform_(-2, 2), m.beta.uniform_(-1, 1)
    return net


def torch_model(name: str):
    import dmxgen

    net_cls, shape = TORCH_CASES[name]
    torch.manual_seed(0)
    net = _randomize(net_cls()).eval()
    x = torch.randn(*shape)
    m = dmxgen.Model(net).transform(None)
    with m.calibrating():
        m(x)
    return m.eval(), x


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_affine_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    affines = [op.kind for op in g.ops].count("affine")
    assert affines >= 1 if AFFINE_OPS[name] is None else affines == AFFINE_OPS[name], [op.kind for op in g.ops]
    assert np.unique(assert_codes_agree(m, g, x)).size > 3


def test_pre_activation_fuses_the_relu_into_the_affine():
    m, x = torch_model("pre_activation")
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["affine", "conv2d"]
    y = g.tensors[g.ops[0].outputs[0]]
    assert g.ops[0].a.act_min == y.quant.zp  # ReLU: nothing below real 0


def test_a_models_own_affine_and_layerscale_train_their_parameters_folded_into_the_linear():
    """`alpha * x + beta` and `gamma * x` with the model's parameters are bound to Affines that share
    them and fold into the Linear between them: training the compressed model still trains them."""
    m, x = torch_model("own_resmlp")
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["fully_connected", "add", "fully_connected"]
    net = m.float_net
    m.train()
    m(x).sum().backward()
    assert net.norm.alpha.grad is not None and net.gamma.grad is not None and net.norm.beta.grad is not None


class BNBeforeConv(nn.Module):
    """A BatchNorm right before a conv (no ReLU between): folded into the conv's weights where
    that is exact (no padding), an affine op before a padded one."""

    def __init__(self, padding, conv1d=False):
        super().__init__()
        bn, conv = (nn.BatchNorm1d, nn.Conv1d) if conv1d else (nn.BatchNorm2d, nn.Conv2d)
        self.stem, self.bn, self.conv = conv(3, 4, 1), bn(4), conv(4, 5, 3, padding=padding)
        self.head = nn.Linear(5 * (5 if padding == 1 else 3) ** (1 if conv1d else 2), 2)

    def forward(self, x):
        return self.head(self.conv(self.bn(torch.relu(self.stem(x)))).flatten(1))


@pytest.mark.parametrize("padding, conv1d, kinds", [
    (0, False, ["conv2d", "conv2d", "reshape", "fully_connected"]),
    ("valid", True, ["conv2d", "conv2d", "reshape", "fully_connected"]),
    (1, False, ["conv2d", "affine", "conv2d", "reshape", "fully_connected"]),
])
def test_a_batchnorm_before_a_conv_folds_into_it_only_where_exact(padding, conv1d, kinds):
    import dmxgen

    torch.manual_seed(0)
    net = _randomize(BNBeforeConv(padding, conv1d)).eval()
    x = torch.randn(32, 3, 5) if conv1d else torch.randn(32, 3, 5, 5)
    m = dmxgen.Model(net).transform(None)
    with m.calibrating():
        m(x)
    g = m.eval().to_graph(x[:1])
    assert [op.kind for op in g.ops if op.kind != "transpose"] == kinds
    assert_codes_agree(m, g, x)
    if padding != 1:  # the fold is exact in float: one conv computes conv(bn(z))
        z = torch.randn((2, 4, 5) if conv1d else (2, 4, 5, 5))
        with torch.no_grad():
            w, b = m.body.conv.folded()
            assert torch.allclose(net.conv._conv_forward(z, w, b), net.conv(net.bn(z)), atol=1e-5)


def test_a_batchnorm_after_its_conv_still_folds():
    import dmxgen

    net = nn.Sequential(nn.Conv2d(3, 4, 3), _randomize(nn.BatchNorm2d(4)), nn.ReLU()).eval()
    x = torch.randn(8, 3, 5, 5)
    m = dmxgen.Model(net).transform(None)
    with m.calibrating():
        m(x)
    assert [op.kind for op in m.eval().to_graph(x[:1]).ops] == ["conv2d"]


@pytest.mark.parametrize("target", targets("affine"))
def test_affine_on_targets(tmp_path, target):
    names = list(DW_CASES) + ["int16_weights"] + list(TORCH_CASES)
    check_targets(tmp_path, target, {name: case(name) for name in names})


def test_torch_affine_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save as save_model

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("residual_bn")
    export_and_verify(save_model(m, tmp_path / "resbn.pt2", x), tmp_path / "c")


@pytest.mark.parametrize("attrs, message", [
    ({"weight": (127, 1)}, r"weight has 2 values for the last dim's 3 channels$"),
    ({"weight": (128, 1, 1), "bias": (0, 0, 0)}, r"weight code 128 does not fit int8$"),
    ({"weight": (32767, 1, 1), "bias": (2**31 - 1000, 0, 0), "weight_bits": 16},
     r"a channel's accumulator \(input \* weight \+ bias\) can overflow int32 \(a bias far too large\)$"),
])
def test_affine_refusals_name_the_op(attrs, message):
    base = {"input_offset": 0, "output_offset": 0, "weight": (1, 1, 1), "bias": (0, 0, 0),
            "multiplier": (1 << 30,) * 3, "shift": (0,) * 3, "activation": "NONE", "act_min": -128, "act_max": 127}
    with pytest.raises(DmxError, match=r"op 'affine_0' \(affine.*" + message):
        affine_graph((1, 2, 3), {**base, **attrs})


# -- an Affine next to a Linear folds into it (ResMLP's pre-norm and layer scale of the channel MLP) ----
class ChannelMlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from dmxgen.compress import Affine

        self.pre, self.fc1, self.fc2, self.post = Affine(6), torch.nn.Linear(6, 8), torch.nn.Linear(8, 6), Affine(6)
        with torch.no_grad():
            for a in (self.pre, self.post):
                a.alpha.uniform_(0.5, 1.5)
                a.beta.uniform_(-0.3, 0.3)

    def forward(self, x):
        return x + self.post(self.fc2(torch.relu(self.fc1(self.pre(x)))))


def test_affines_next_to_linears_fold_into_them_and_stay_bit_exact():
    import torch.nn.functional as F

    from ._torch import calibrated

    m, x = calibrated(ChannelMlp, (64, 5, 6))
    g = m.to_graph(x[:1])
    assert "affine" not in [op.kind for op in g.ops] and [op.kind for op in g.ops].count("fully_connected") == 2
    assert_codes_agree(m, g, x)
    net = m.float_net
    fc1, fc2 = m.body.get_submodule("fc1"), m.body.get_submodule("fc2")
    with torch.no_grad():  # the folds are exact in float
        w, b = fc1.folded(masked=False)
        assert torch.allclose(F.linear(x, w, b), net.fc1(net.pre(x)), atol=1e-5)
        w, b = fc2.folded(masked=False)
        h = torch.randn(7, 8)
        assert torch.allclose(F.linear(h, w, b), net.post(net.fc2(h)), atol=1e-5)
