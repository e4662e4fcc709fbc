"""nn.GRU through dmxgen.Model: one `gru` op per stacked layer (ops/gru.py, dmxgen's own kind).

TFLite has no GRU, so there is no golden: the fake-quantized model's codes are the integer
reference's (the layer runs the op's own kernel), and the integer model stays near the float one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dmxgen
from dmxgen.errors import DmxError

from ..ops._torch import assert_codes_agree, calibrated


class KwsGRU(nn.Module):
    """The keyword spotter on a GRU (dmxgen's own gru op, ops/gru.py), reading h_n[-1]."""

    def __init__(self, hidden=16, layers=1):
        super().__init__()
        self.gru = nn.GRU(10, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, 12)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(h[-1])


def _scaled_gru(hidden, layers, gain):
    def build():
        net = KwsGRU(hidden, layers)
        with torch.no_grad():
            for p in net.gru.parameters():
                p.mul_(gain)
        return net
    return build


@pytest.mark.parametrize("hidden,layers", [(16, 1), (24, 2)])
def test_kws_gru_codes_are_the_integer_references(hidden, layers):
    m, x = calibrated(_scaled_gru(hidden, layers, 3.0), (4, 49, 10), seed=8)
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["gru"] * layers + ["strided_slice", "fully_connected"]
    codes = assert_codes_agree(m, g, x)
    assert len(np.unique(codes)) > 20
    with torch.no_grad():  # the integer GRU stays near the float one: logits within a few output codes
        s, _ = m.output_quant().qparams()
        assert float((m.float_net(x) - m(x)).abs().max()) / s < 4


def test_gru_saves_loads_and_exports_bit_exact(tmp_path):
    """Two stacked layers: the .pt2 reloads with the same codes, `dmxgen verify` of the export is bit-exact
    (the C gru kernel, each vector from the reset state) and the model keeps one state per layer."""
    from .conftest import export_and_verify

    m, x = calibrated(_scaled_gru(16, 2, 2.0), (2, 20, 10), seed=9)
    path = dmxgen.save(m, tmp_path / "gru.pt2", x)
    with torch.no_grad():
        assert torch.equal(dmxgen.load(path)(x[:1]), m(x[:1]))
    out = export_and_verify(path, tmp_path / "out")
    assert "dmx_model_reset_state" in (out / "model.h").read_text()
    assert (out / "kernels.c").read_text().count("void dmx_gru_s8(") == 1


def _gru_initial_state(self, x):
    return self.fc(self.gru(x, torch.zeros(1, x.shape[0], 8))[0][:, -1])


def test_gru_refusals_are_one_line():
    class Net(nn.Module):
        def __init__(self, forward, **options):
            super().__init__()
            self.gru = nn.GRU(10, 8, **{"batch_first": True, **options})
            self.fc = nn.Linear(8, 3)
            self._forward = forward

        def forward(self, x):
            return self._forward(self, x)

    last = lambda self, x: self.fc(self.gru(x)[0][:, -1])  # noqa: E731
    cases = [(Net(_gru_initial_state), "layer 'gru' (GRU): an initial state h0 is not supported; the integer GRU "
                                       "starts from zero states, call it as gru(x)"),
             (Net(last, bidirectional=True), "layer 'gru' (GRU) is not supported by the torch frontend: a "
              "bidirectional GRU is not supported (the gru op is unidirectional); see "
              "docs/compression.md#supported-layers"),
             (Net(lambda self, x: self.fc(self.gru(x)[1][0]), num_layers=2),
              "layer 'gru' (GRU): of its final hidden state h_n only h_n[-1] (the last layer's, which is "
              "output[:, -1]) is supported ('getitem_1')")]
    for net, message in cases:
        with pytest.raises(DmxError) as e:
            dmxgen.Model(net).transform()
        assert str(e.value) == message


def test_gru_trains_through_nn_gru():
    m, x = calibrated(_scaled_gru(12, 2, 2.0), (3, 8, 10), seed=10)
    m.train()
    m(x).square().sum().backward()
    grads = [p.grad for p in m.float_net.gru.parameters()]
    assert all(gr is not None and float(gr.abs().sum()) > 0 for gr in grads)
