"""Sparsity masks keep exactly the configured number of weights, and the exported weights follow them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen.api import Model
from dmxgen.compress.sparsity import compute_mask, parse_sparseness, to_matrix
from dmxgen.errors import DmxError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 24)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _calibrated(config):
    torch.manual_seed(0)
    m = Model(Net()).transform(config)
    x = torch.randn(16, 8, 4, 4)
    with m.calibrating():
        m(x)
    return m, x


@pytest.mark.parametrize("density", [0.1, 0.25, 0.37, 1.0])
def test_topk_keeps_round_density_times_size(density):
    torch.manual_seed(1)
    w = torch.randn(16, 8, 3, 3)
    mask = compute_mask(w, parse_sparseness(f"TOPK{{{density}}}"))
    keep = int(np.floor(density * w.numel() + 0.5))
    assert int(mask.sum()) == keep
    kept, dropped = w.abs()[mask.bool()], w.abs()[~mask.bool()]
    if dropped.numel():
        assert kept.min() >= dropped.max()


def test_topk_ties_keep_an_exact_count():
    w = torch.ones(4, 10)
    assert int(compute_mask(w, parse_sparseness("TOPK{0.5}")).sum()) == 20


def test_nm_keeps_n_of_every_m_along_the_input_dim():
    m, x = _calibrated({"conv": {"weight_sparseness": "BTOPK{2:4}"}, "fc": {"weight_sparseness": "BTOPK{1:4}"}})
    g = m.to_graph(x[:1])
    conv_w = g.tensors["conv.weight"].data  # OHWI: input channels innermost
    groups = (conv_w.reshape(-1, 4) != 0).sum(axis=1)
    assert groups.max() <= 2
    mask = m.weighted_layers()["conv"].weight_mask
    assert torch.equal(to_matrix(mask).reshape(-1, 4).sum(1), torch.full((16 * 9 * 2,), 2.0))
    fc_mask = m.weighted_layers()["fc"].weight_mask.reshape(-1, 4)
    assert torch.equal(fc_mask.sum(1), torch.ones(fc_mask.shape[0]))
    assert m.sparsity()["conv"] == 0.5 and m.sparsity()["fc"] == 0.75


def test_block_pattern_keeps_whole_blocks():
    torch.manual_seed(2)
    w = torch.randn(16, 32)
    mask = compute_mask(w, parse_sparseness("BLOCK{4x2,0.25}"))
    blocks = mask.reshape(4, 4, 16, 2).sum(dim=(1, 3))
    assert set(blocks.unique().tolist()) <= {0.0, 8.0}
    assert int((blocks == 8).sum()) == 16  # 25% of 64 blocks


def test_exported_weights_are_zero_where_masked():
    m, x = _calibrated({"type:Conv2d": {"weight_sparseness": "TOPK{0.1}"},
                        "type:Linear": {"weight_sparseness": "TOPK{0.2}"}})
    g = m.to_graph(x[:1])
    for name, layer in m.weighted_layers().items():
        w = g.tensors[f"{name}.weight"].data
        mask = to_matrix(layer.weight_mask).numpy()
        mat = w.reshape(w.shape[0], -1) if w.ndim == 4 else w
        if name == "fc":  # the graph's columns are the NHWC flattening of the conv output
            continue
        assert np.all(mat[mask == 0] == 0)
    assert g.tensors["fc.weight"].data.size - np.count_nonzero(g.tensors["fc.weight"].data) >= \
        int(0.8 * g.tensors["fc.weight"].data.size)


def test_nm_that_does_not_fit_names_the_layer():
    with pytest.raises(DmxError, match=r"layer 'conv' \(Conv2d\): BTOPK\{2:3\} needs the input dimension \(8\)"):
        Model(Net()).transform({"conv": {"weight_sparseness": "BTOPK{2:3}", "strict": True}})


def test_masked_weights_get_no_gradient_and_kept_ones_do():
    m, x = _calibrated({"fc": {"weight_sparseness": "TOPK{0.3}"}})
    m.train()
    m(x).sum().backward()
    layer = m.weighted_layers()["fc"]
    grad = layer.layer.weight.grad
    assert torch.all(grad[layer.weight_mask == 0] == 0)
    assert torch.count_nonzero(grad[layer.weight_mask == 1]) > 0.9 * layer.weight_mask.sum()
