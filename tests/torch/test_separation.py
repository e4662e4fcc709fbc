"""Layer separation (dmxgen.compress.separation): SVD for Linear, Tucker-2 for Conv2d.

Tolerances: float32 layers, so "exact" is a relative error below 1e-5 at full rank; at the
VBMF rank of a planted low-rank layer plus noise of relative size eps, the error stays below 3 eps.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen.compress import separation
from dmxgen.compress.model import Model


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def test_svd_is_exact_at_full_rank():
    torch.manual_seed(0)
    layer = nn.Linear(20, 30)
    new = separation.separate_linear(layer, rank=20)
    assert [m.weight.shape for m in new] == [(20, 20), (30, 20)] and new[0].bias is None
    x = torch.randn(8, 20)
    assert rel(new(x), layer(x)) < 1e-5


def test_svd_at_the_vbmf_rank_of_a_planted_low_rank_layer():
    torch.manual_seed(0)
    layer = nn.Linear(96, 64)
    eps = 1e-2
    with torch.no_grad():
        low = torch.randn(64, 4) @ torch.randn(4, 96)
        noise = torch.randn(64, 96)
        layer.weight.copy_(low + eps * low.norm() / noise.norm() * noise)
    new = separation.separate_linear(layer)  # rank by VBMF
    assert new[0].out_features == 4
    x = torch.randn(16, 96)
    assert rel(new(x) - layer.bias, layer(x) - layer.bias) < 3 * eps


def test_energy_rank_keeps_the_requested_fraction():
    m = np.diag([10.0, 5.0, 1.0, 0.1])
    assert separation.choose_rank(m, 0.5) == 1  # 100 / 126.01
    assert separation.choose_rank(m, 0.95) == 2  # 125 / 126.01
    assert separation.choose_rank(m, 1.0) == 4
    with pytest.raises(ValueError, match="energy"):
        separation.choose_rank(m, 1.5)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_tucker2_is_exact_at_full_rank(stride, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, stride=stride, padding=padding, dilation=dilation)
    new = separation.separate_conv2d(conv, rank=(10, 6))
    kinds = [(m.kernel_size, m.in_channels, m.out_channels, m.bias is not None) for m in new]
    assert kinds == [((1, 1), 6, 6, False), ((3, 3), 6, 10, False), ((1, 1), 10, 10, True)]
    x = torch.randn(2, 6, 11, 11)
    assert rel(new(x), conv(x)) < 1e-5


def test_tucker2_at_the_vbmf_ranks_of_a_planted_kernel():
    torch.manual_seed(1)
    out_c, in_c, r_out, r_in = 32, 24, 5, 3
    core = torch.randn(r_out, r_in, 3, 3)
    u_out, u_in = torch.randn(out_c, r_out), torch.randn(in_c, r_in)
    low = torch.einsum("rskl,or,is->oikl", core, u_out, u_in)
    eps = 1e-2
    noise = torch.randn_like(low)
    conv = nn.Conv2d(in_c, out_c, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(low + eps * low.norm() / noise.norm() * noise)
    assert separation.tucker2_ranks(conv.weight) == (r_out, r_in)
    new = separation.separate_conv2d(conv)
    x = torch.randn(2, in_c, 8, 8)
    assert rel(new(x), conv(x)) < 3 * eps
    assert separation.parameter_count(new) < separation.parameter_count(conv) / 5


def test_grouped_conv_is_refused():
    with pytest.raises(ValueError, match="groups=1"):
        separation.separate_conv2d(nn.Conv2d(4, 4, 3, groups=2))
    assert not separation.separable(nn.Conv2d(4, 4, 3, groups=4))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(8, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x):
        return torch.relu(self.bn(self.proj(x)))


class Net(nn.Module):
    """Layers in a plain attribute, a nested module and a ModuleList: no nn.Sequential."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = Block()
        self.heads = nn.ModuleList([nn.Linear(16 * 16, 32), nn.Linear(32, 10)])

    def forward(self, x):
        x = self.block(torch.relu(self.stem(x)))
        x = torch.flatten(nn.functional.avg_pool2d(x, 4), 1)
        return self.heads[1](torch.relu(self.heads[0](x)))


def test_separation_replaces_layers_anywhere_in_the_module_tree():
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # heads.0 of rank 4: separating it at rank 4 keeps its function
        net.heads[0].weight.copy_(torch.randn(32, 4) @ torch.randn(4, 256) / 16)
    x = torch.randn(3, 1, 16, 16)
    want = net(x)
    assert separation.separate_in_place(net, "heads.0", rank=32) is None  # 32*(256+32) is not smaller
    a = separation.separate(net.block.proj, rank=(16, 8))  # full rank: same function (but not smaller)
    separation.replace_module(net, "block.proj", a)
    b = separation.separate_in_place(net, "heads.0", rank=4)
    assert net.block.proj is a and net.heads[0] is b and b[0].out_features == 4
    assert rel(net(x), want) < 1e-5
    model = Model(net).transform(None)  # the tracer sees the factors as ordinary layers
    names = sorted(model.weighted_layers())
    assert names == ["block.proj.0", "block.proj.1", "block.proj.2", "heads.0.0", "heads.0.1", "heads.1", "stem"]
    assert model.weighted_layers()["block.proj.2"].bn is net.block.bn  # BatchNorm folds into the last 1x1
