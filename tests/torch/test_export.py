"""Compressed PyTorch models -> integer Graph: the reference agrees with the fake-quantized model."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.api import Model, register_function
from dmxgen.errors import DmxError

from .conftest import compare, export_and_verify, exporter_available


def _compressed(net, x, config=None):
    torch.manual_seed(0)
    m = Model(net).transform(config)
    with m.calibrating():
        m(x)
    return m.eval()


def _agree(model, x, graph=None):
    """The fake-quantized forward computes exactly the integer reference's codes."""
    ref, fq = compare(model, x, graph)
    assert ref.shape == fq.shape
    diff = np.abs(ref - fq)
    assert diff.max() == 0, f"{int((diff > 0).sum())} of {diff.size} outputs differ (max {diff.max()})"
    return ref, fq


class Residual(nn.Module):
    """conv-BN-ReLU, conv-BN, a functional residual add and F.relu, global pool, Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        x = F.relu(x + y)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.head(torch.flatten(x, 1))


def _randomize_bn(net):
    g = torch.Generator().manual_seed(3)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return net.eval()


def test_residual_block_with_functional_add_and_relu():
    torch.manual_seed(0)
    net = _randomize_bn(Residual())
    x = torch.randn(64, 3, 6, 6)
    m = _compressed(net, x)
    g = m.to_graph(x[:1])
    kinds = [op.kind for op in g.ops]
    assert kinds == ["conv2d", "conv2d", "conv2d", "add", "avg_pool2d", "reshape", "fully_connected"]
    add = next(op for op in g.ops if op.kind == "add")
    assert add.attrs["activation"] == "RELU" and add.attrs["act_min"] == g.tensors[add.outputs[0]].quant.zp
    assert g.inputs == ["x"] and g.tensors["x"].shape == (1, 6, 6, 3)  # NHWC
    _agree(m, x, g)


def test_batchnorm_folding_equals_conv_then_batchnorm():
    torch.manual_seed(0)
    net = _randomize_bn(Residual())
    m = Model(copy.deepcopy(net)).transform()
    layer = m.weighted_layers()["conv1"]
    x = torch.randn(4, 8, 5, 5)
    w, b = layer.folded()
    with torch.no_grad():
        folded = F.conv2d(x, w, b, padding=1)
        plain = net.bn1(net.conv1(x))
    assert torch.allclose(folded, plain, atol=1e-5)


class Mixed(nn.Module):
    """Conv1d, depthwise and grouped conv, avg pool, cat, mul, mean and several table activations."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 6, 3, padding=1)
        self.dw = nn.Conv1d(6, 12, 3, padding="same", groups=6)
        self.grouped = nn.Conv1d(12, 8, 1, groups=2)
        self.pool = nn.AvgPool1d(2)
        self.conv3 = nn.Conv1d(8, 8, 1)
        self.bn = nn.BatchNorm1d(8)
        self.silu = nn.SiLU()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        a = torch.sigmoid(self.c1(x))
        b = self.dw(a)
        c = F.gelu(self.grouped(b))
        d = self.pool(self.silu(self.bn(self.conv3(c))) * torch.tanh(c))
        e = torch.cat([d, d * 0.5], dim=1)
        return self.fc(e.mean(2))


def test_conv1d_depthwise_grouped_pool_cat_mul_and_tables():
    torch.manual_seed(0)
    net = Mixed().eval()
    x = torch.randn(64, 2, 8)
    m = _compressed(net, x)
    g = m.to_graph(x[:1])
    kinds = [op.kind for op in g.ops]
    for k in ("conv2d", "depthwise_conv2d", "lut", "mul", "avg_pool2d", "concat", "fully_connected"):
        assert k in kinds, k
    grouped = next(op for op in g.ops if op.name == "grouped")
    w = g.tensors[grouped.inputs[1]].data  # [8, 1, 1, 12]: block-diagonal, 4 outputs per group of 6 inputs
    assert np.all(w[:4, ..., 6:] == 0) and np.all(w[4:, ..., :6] == 0)
    assert g.tensors["x"].shape == (1, 1, 8, 2)
    _agree(m, x, g)


class MixedNoCat(Mixed):
    """Mixed without the cat (the C backend has no concat kernel yet), flattening an NCL tensor."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        a = torch.sigmoid(self.c1(x))
        c = F.gelu(self.grouped(self.dw(a)))
        d = self.pool(self.silu(self.bn(self.conv3(c))) * torch.tanh(c))
        return self.head(torch.flatten(d, 1))


@pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")
def test_tables_mul_and_conv1d_through_the_c_backend(tmp_path):
    from dmxgen.api import save

    torch.manual_seed(0)
    x = torch.randn(32, 2, 8)
    m = _compressed(MixedNoCat().eval(), x, {"c1": {"weight_format": "INT4"}})
    export_and_verify(save(m, tmp_path / "mixed.pt2", x), tmp_path / "c")


def test_lookup_tables_are_bit_exact_against_the_model():
    class Act(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 16)
            self.act = nn.GELU()

        def forward(self, x):
            return torch.sigmoid(self.act(self.fc(x)))

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    m = _compressed(Act(), x)
    # compare the two table layers alone: start from the fc output grid
    _agree(m, x)
    g = m.to_graph(x[:1])
    luts = [op for op in g.ops if op.kind == "lut"]
    assert len(luts) == 2 and all(op.attrs["table"].dtype == np.int8 and op.attrs["table"].size == 256 for op in luts)
    # a table is what the layer computes on each of the 256 input codes
    lut_layer = m.body.act
    s, zp = lut_layer.in_quant.qparams()
    codes = torch.arange(-128, 128, dtype=torch.float32)
    with torch.no_grad():
        out = lut_layer((codes - zp) * s)
    so, zo = lut_layer.out_quant.qparams()
    assert np.array_equal(np.rint(out.numpy() / so) + zo, luts[0].attrs["table"].astype(np.float64))


def test_custom_elementwise_module_declared_as_lut():
    class Swish(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(1.5 * x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)
            self.act = Swish()

        def forward(self, x):
            return self.act(self.fc(x))

    torch.manual_seed(0)
    x = torch.randn(128, 6)
    m = _compressed(Net(), x, {"act": {"approximation_function": "LUT"}})
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["fully_connected", "lut"]
    _agree(m, x, g)
    register_function("CUBE", lambda t: t ** 3)
    m2 = _compressed(Net(), x, {"act": {"approximation_function": "LUT(CUBE)"}})
    s, zp = m2.body.act.in_quant.qparams()
    so, zo = m2.body.act.out_quant.qparams()
    table = m2.to_graph(x[:1]).ops[1].attrs["table"].astype(np.int64)
    grid = (np.arange(-128, 128) - zp) * np.float32(s)
    want = np.clip(np.floor(np.abs(grid ** 3 / so) + 0.5) * np.sign(grid ** 3) + zo, -128, 127)
    assert (np.abs(table - want) <= 1).all()


def test_int4_weights_stay_in_range_and_are_marked():
    torch.manual_seed(0)
    net = Residual().eval()
    x = torch.randn(32, 3, 6, 6)
    m = _compressed(net, x, {"type:Conv2d": {"weight_format": "INT4"}, "head": {"weight_format": "INT4(PER_TENSOR)"}})
    g = m.to_graph(x[:1])
    for op in g.ops:
        w = g.weights(op)
        if w is None:
            continue
        assert op.attrs.get("weight_bits") == 4
        assert w.data.min() >= -7 and w.data.max() <= 7 and w.data.dtype == np.int8
    assert g.tensors["head.weight"].quant.scale.size == 1
    _agree(m, x, g)


def test_flatten_of_nchw_permutes_linear_columns():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.fc = nn.Linear(3 * 4 * 4, 5)

        def forward(self, x):
            return self.fc(self.conv(x).view(x.size(0), -1))

    torch.manual_seed(0)
    x = torch.randn(64, 1, 4, 4)
    m = _compressed(Flat(), x)
    _agree(m, x)


def test_batchnorm_that_cannot_be_folded_is_an_affine_op():
    class Loose(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            return self.bn(torch.tanh(self.fc(x)))

    x = torch.randn(64, 4)
    m = _compressed(Loose(), x)
    assert [op.kind for op in m.to_graph(x[:1]).ops] == ["fully_connected", "lut", "affine"]
    _agree(m, x)  # tests/ops/test_affine.py has the other unfoldable BatchNorms


def test_export_errors_name_the_layer():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(self.conv(x))  # Linear over W of an NCHW tensor

    with pytest.raises(DmxError, match="layer 'fc': Linear over the last dim of a NCHW tensor"):
        Model(Bad()).transform()  # refused before calibration, not first at export
