"""In-place activations (torchvision's MobileNetV3 and EfficientNet use them) and save's agreement check.

An inplace activation overwrote the tensor the lookup table then read, so the
fake-quantized model applied it twice while the export was right; dmxgen.save
now also refuses any model whose layers disagree with the exported graph.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.api import Model, reference_outputs, save
from dmxgen.compress.agreement import DisagreementError
from dmxgen.errors import DmxError
from dmxgen.frontends import load

from .conftest import compare, export_and_verify, exporter_available


def _calibrated(net, x):
    torch.manual_seed(0)
    m = Model(net).transform()  # INT8 everywhere
    with m.calibrating():
        m(x)
    return m.eval()


def _saved_agrees(model, x, path):
    """save, then the graph read back from the file computes the fake-quantized model's codes."""
    save(model, path, x[:1])
    graph = load(path)
    ref = reference_outputs(graph, model.quantize_input(x)).astype(np.int64)
    fq = model.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"
    return graph


class _Call(nn.Module):
    """A functional call as a module, for in-place functions and methods."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_conv_hardswish_inplace_linear(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardswish(inplace=True), nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.randn(16, 3, 4, 4)
    m = _calibrated(net, x)
    graph = _saved_agrees(m, x, tmp_path / "m.pt2")
    assert [op.kind for op in graph.ops] == ["conv2d", "lut", "reshape", "fully_connected"]


INPLACE = [
    lambda: nn.Hardswish(inplace=True), lambda: nn.SiLU(inplace=True), lambda: nn.ReLU(inplace=True),
    lambda: nn.ReLU6(inplace=True), lambda: nn.Hardsigmoid(inplace=True), lambda: nn.ELU(inplace=True),
    lambda: nn.LeakyReLU(0.1, inplace=True), lambda: nn.Hardtanh(-0.5, 0.5, inplace=True),
    lambda: nn.SELU(inplace=True), lambda: nn.CELU(inplace=True), lambda: nn.Mish(inplace=True),
    lambda: _Call(lambda x: F.hardswish(x, inplace=True)), lambda: _Call(lambda x: x.relu_()),
    lambda: _Call(lambda x: x.mul_(0.5)), lambda: _Call(lambda x: x.add_(1.0)),
]


@pytest.mark.parametrize("make", INPLACE, ids=lambda f: repr(f()).split("\n")[0])
def test_every_inplace_activation_is_applied_once(make, tmp_path):
    """After a max pool nothing fuses the activation: each becomes a table that must read its own input."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), make(), nn.Flatten(),
                        nn.Linear(64, 3)).eval()
    x = torch.randn(16, 3, 8, 8) * 2
    m = _calibrated(net, x)
    graph = _saved_agrees(m, x, tmp_path / "m.pt2")
    assert "lut" in [op.kind for op in graph.ops]


# -- torchvision's shapes, at small widths, written from the papers ---------------------------------


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as torchvision writes it: pool, 1x1 conv, act, 1x1 conv, gate, scale."""

    def __init__(self, c: int, squeeze: int, act, gate):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.activation, self.scale_activation = act(), gate()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x


def conv_bn_act(cin, cout, k, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV3 bneck / EfficientNet MBConv: expand 1x1, depthwise kxk, SE, project 1x1, residual."""

    def __init__(self, cin, expanded, cout, k, stride, act, se=None):
        super().__init__()
        layers = []
        if expanded != cin:
            layers.append(conv_bn_act(cin, expanded, 1, act=act))
        layers.append(conv_bn_act(expanded, expanded, k, stride, groups=expanded, act=act))
        if se is not None:
            layers.append(se(expanded))
        layers.append(conv_bn_act(expanded, cout, 1))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


def mobilenet_v3_small(classes=10):
    hs, re = (lambda: nn.Hardswish(inplace=True)), (lambda: nn.ReLU(inplace=True))

    def se(c):
        return SqueezeExcite(c, max(8, c // 4), re, lambda: nn.Hardsigmoid(inplace=True))

    features = nn.Sequential(
        conv_bn_act(3, 8, 3, 2, act=hs),
        InvertedResidual(8, 8, 8, 3, 2, re, se),
        InvertedResidual(8, 24, 12, 3, 2, re),
        InvertedResidual(12, 32, 12, 3, 1, re),
        InvertedResidual(12, 48, 16, 5, 2, hs, se),
        InvertedResidual(16, 64, 16, 5, 1, hs, se),
        conv_bn_act(16, 48, 1, act=hs))
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                         nn.Sequential(nn.Linear(48, 32), hs(), nn.Dropout(0.2, inplace=True), nn.Linear(32, classes)))


def efficientnet_b0(classes=10):
    silu = lambda: nn.SiLU(inplace=True)  # noqa: E731

    def se(c):
        return SqueezeExcite(c, max(4, c // 4), silu, nn.Sigmoid)

    features = nn.Sequential(
        conv_bn_act(3, 8, 3, 2, act=silu),
        InvertedResidual(8, 8, 8, 3, 1, silu, se),  # MBConv1: no expansion, residual
        InvertedResidual(8, 48, 12, 3, 2, silu, se),  # MBConv6
        InvertedResidual(12, 72, 12, 3, 1, silu, se),
        InvertedResidual(12, 72, 16, 5, 2, silu, se),
        conv_bn_act(16, 64, 1, act=silu))
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2, inplace=True),
                         nn.Linear(64, classes))


def _randomized(net):
    """Random BatchNorm statistics, so that folding matters; eval mode as for export."""
    g = torch.Generator().manual_seed(5)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return net.eval()


@pytest.mark.parametrize("make", [mobilenet_v3_small, efficientnet_b0], ids=["mobilenet_v3_small",
                                                                              "efficientnet_b0"])
def test_torchvision_shaped_nets_with_inplace_activations(make, tmp_path):
    torch.manual_seed(2)
    net = _randomized(make())
    x = torch.randn(8, 3, 32, 32)
    m = _calibrated(net, x)
    graph = _saved_agrees(m, x, tmp_path / "m.pt2")
    kinds = [op.kind for op in graph.ops]
    assert {"depthwise_conv2d", "lut", "mul", "avg_pool2d"} <= set(kinds)
    ref, fq = compare(m, x)
    assert np.array_equal(ref, fq)
    if exporter_available():
        export_and_verify(tmp_path / "m.pt2", tmp_path / "out")


# -- save refuses a model whose layers disagree with its export --------------------------------------


def test_save_refuses_and_names_the_first_disagreeing_layer(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardswish(), nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.randn(16, 3, 4, 4)
    m = _calibrated(net, x)
    lut = m.body.get_submodule("1")
    step, _ = lut.out_quant.qparams()
    forward = lut.forward
    monkeypatch.setattr(lut, "forward", lambda t: forward(t) + step)  # one code off, as a drifted layer would be
    path = tmp_path / "m.pt2"
    with pytest.raises(DisagreementError) as e:
        save(m, path, x[:1])
    msg = str(e.value)
    assert isinstance(e.value, DmxError) and "\n" not in msg
    assert msg.startswith("cannot save: layer '1' of the fake-quantized model") and "(lut)" in msg
    assert not path.exists()
    monkeypatch.undo()
    save(m, path, x[:1])  # the unpatched model saves


def test_save_names_a_drifted_layer_deep_inside_a_net(tmp_path, monkeypatch):
    torch.manual_seed(2)
    net = _randomized(mobilenet_v3_small())
    x = torch.randn(4, 3, 32, 32)
    m = _calibrated(net, x)
    name = "0.4.block.2.fc2"  # features[4], its squeeze-excitation's second conv
    layer = m.body.get_submodule(name)
    s, _ = layer.out_quant.qparams()
    forward = layer.forward
    monkeypatch.setattr(layer, "forward", lambda t: forward(t) - s)
    with pytest.raises(DisagreementError, match=f"cannot save: layer '{name}' .*\\(conv2d\\)"):
        save(m, tmp_path / "m.pt2", x[:1])
