"""aware(): torch.nn layers made afterwards are dmxgen-aware subclasses; Model labels them."""
from __future__ import annotations

import torch
from torch import nn

from dmxgen.api import Model, aware
from dmxgen.compress.aware import is_aware


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
