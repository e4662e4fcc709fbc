"""aware(): torch.nn layers made afterwards are dmxgen-aware subclasses; Model labels them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dmxgen.api import Model, aware, save
from dmxgen.compress.aware import _ORIGINAL, PATCHED, is_aware
from dmxgen.frontends import load
from dmxgen.frontends.torch_io import dumps


def test_aware_layers_are_labelled_and_torch_is_restored():
    original = nn.Linear
    with aware():
        assert nn.Linear is not original and issubclass(nn.Linear, original)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert nn.Linear is original
    assert is_aware(net[0]) and isinstance(net[0], original)
    m = Model(net).transform({"0": {"weight_format": "INT4"}})
    assert net[0].dmx_config.weight.bits == 4 and "weight_format" in repr(net[0])
    assert net[2].dmx_config.set_fields == frozenset()
    x = torch.randn(8, 4)
    with m.calibrating():
        m(x)
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["fully_connected", "fully_connected"]
    assert g.ops[0].attrs["weight_bits"] == 4 and g.ops[0].attrs["activation"] == "RELU"


def _net_with(name: str) -> nn.Module:
    """A small net around one layer of the class `name`, built from torch.nn as it is now (aware or not)."""
    if name in ("Linear", "ReLU", "ReLU6", "Hardtanh", "GELU", "SiLU", "Tanh", "Sigmoid", "BatchNorm1d"):
        act = nn.BatchNorm1d(6) if name == "BatchNorm1d" else nn.Identity() if name == "Linear" else \
            nn.Hardtanh(-0.5, 0.5) if name == "Hardtanh" else getattr(nn, name)()
        return nn.Sequential(nn.Linear(8, 6), act, nn.Linear(6, 3))
    if name.endswith("1d"):  # Conv1d and the 1-D pools
        mid = nn.Identity() if name == "Conv1d" else nn.AdaptiveAvgPool1d(2) if name.startswith("Adaptive") else \
            getattr(nn, name)(2)
        return nn.Sequential(nn.Conv1d(3, 4, 3), mid, nn.Flatten(), nn.LazyLinear(3))
    mid = nn.BatchNorm2d(4) if name == "BatchNorm2d" else nn.Identity() if name == "Conv2d" else \
        nn.AdaptiveAvgPool2d(2) if name.startswith("Adaptive") else getattr(nn, name)(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3), mid, nn.Flatten(), nn.LazyLinear(3))


def _saved_graph(net: nn.Module, x: torch.Tensor, path):
    g = torch.Generator().manual_seed(4)
    net(x)  # materializes LazyLinear
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in net.modules():
            if hasattr(m, "running_var"):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    m = Model(net.eval()).transform()
    with m.calibrating():
        m(x)
    save(m, path, x[:1])
    return dumps(load(path)), m.eval()(x)


@pytest.mark.parametrize("name", PATCHED)
def test_every_patched_layer_exports_as_its_torch_nn_class(name, tmp_path):
    """Built after aware(), each layer transforms, calibrates, saves and exports exactly like plain torch.nn."""
    x = torch.randn(16, 8) if name in ("Linear", "ReLU", "ReLU6", "Hardtanh", "GELU", "SiLU", "Tanh", "Sigmoid",
                                       "BatchNorm1d") else \
        torch.randn(16, 3, 10) if name.endswith("1d") else torch.randn(16, 3, 6, 6)
    plain, plain_out = _saved_graph(_net_with(name), x, tmp_path / "plain.pt2")
    with aware():
        net = _net_with(name)
        assert all(is_aware(m) for m in net.modules() if type(m).__name__ in PATCHED)
        aware_graph, aware_out = _saved_graph(net, x, tmp_path / "aware.pt2")
    assert aware_graph == plain
    assert torch.equal(aware_out, plain_out)


def test_aware_on_does_not_break_plain_layers_built_before(tmp_path):
    """dmxgen's own isinstance checks do not read the patched torch.nn names."""
    x = torch.randn(16, 3, 10)
    plain, _ = _saved_graph(_net_with("Conv1d"), x, tmp_path / "a.pt2")
    net = _net_with("Conv1d")
    with aware():
        again, _ = _saved_graph(net, x, tmp_path / "b.pt2")
    assert again == plain


def test_aware_is_undone_between_tests():
    aware()  # left on on purpose: the autouse fixture in conftest.py restores torch.nn after the test
    assert nn.GELU is not _ORIGINAL["GELU"]


def test_torch_nn_is_plain_again():
    assert all(getattr(nn, name) is _ORIGINAL[name] for name in PATCHED)
