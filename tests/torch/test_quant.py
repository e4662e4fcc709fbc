"""Fake quantization rounds like the integer kernels, passes gradients straight through,
and nothing exports before activation ranges are recorded."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen.api import Model, save
from dmxgen.compress.formats import NumFormat
from dmxgen.compress.quant import ActQuant, fake_quant_weight, qparams_from_range, round_half_away
from dmxgen.errors import DmxError
from dmxgen.graph.fixedpoint import round_half_away as round_int


def test_round_half_away_on_ties_unlike_torch_round():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999, -2.5001])
    assert round_half_away(x).tolist() == [round_int(v) for v in x.tolist()]
    assert round_half_away(x).tolist() != torch.round(x).tolist()


@pytest.mark.parametrize("lo, hi", [(-1.0, 3.0), (0.0, 6.0), (0.5, 2.0), (-4.0, -1.0), (-0.3, 0.7)])
def test_zero_is_exact_and_range_is_covered(lo, hi):
    fmt = NumFormat(8)
    s, zp = qparams_from_range(lo, hi, fmt)
    assert -128 <= zp <= 127 and s == float(np.float32(s))
    assert (-128 - zp) * s <= min(lo, 0) + s and (127 - zp) * s >= max(hi, 0) - s
    q = ActQuant(fmt)
    q.observe(torch.tensor([lo, hi]))
    assert q(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_int4_activation_codes_stay_in_range():
    q = ActQuant(NumFormat(4))
    q.observe(torch.tensor([-1.0, 2.0]))
    codes = q.codes(torch.linspace(-5, 5, 101))
    assert codes.min() == -8 and codes.max() == 7


def test_weight_fake_quant_is_symmetric_per_channel_and_ste():
    torch.manual_seed(0)
    w = torch.randn(6, 5, requires_grad=True)
    w_hat, q, scales = fake_quant_weight(w, NumFormat(4, "PER_CHANNEL"))
    assert q.abs().max() <= 7 and scales.shape == (6,)
    assert torch.allclose(w_hat, q * scales[:, None])
    assert q.abs().amax(dim=1).tolist() == [7.0] * 6  # each channel's largest weight maps to the top code
    w_hat.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_activation_ste_gradient_is_clipped_outside_the_range():
    q = ActQuant(NumFormat(8))
    q.observe(torch.tensor([-1.0, 1.0]))
    x = torch.tensor([-3.0, -0.5, 0.25, 0.9, 3.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))


def test_export_and_save_refuse_uncalibrated_models(tmp_path):
    m = Model(Tiny())
    with pytest.raises(DmxError, match="call model.transform"):
        m.to_graph(torch.zeros(1, 4))
    m.transform()
    for action in (lambda: m.to_graph(torch.zeros(1, 4)), lambda: save(m, tmp_path / "m.pt2", torch.zeros(1, 4))):
        with pytest.raises(DmxError) as e:
            action()
        assert "activation ranges were never recorded" in str(e.value)
        assert "model.calibrating()" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m.pt2").exists()


def test_calibrating_records_and_resets_ranges():
    m = Model(Tiny()).transform()
    with m.calibrating():
        m(torch.full((2, 4), 1.0))
    first = {k: (float(q.lo), float(q.hi)) for k, q in m.act_quants().items()}
    with m.calibrating():
        m(torch.full((2, 4), -2.0))
    second = {k: (float(q.lo), float(q.hi)) for k, q in m.act_quants().items()}
    assert first["x_quant"] == (1.0, 1.0) and second["x_quant"] == (-2.0, -2.0)
    assert not m.uncalibrated()


def test_torch_requantization_equals_fixedpoint():
    from dmxgen.compress.intops import mbqm
    from dmxgen.graph.fixedpoint import multiply_by_quantized_multiplier

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(-2**31, 2**31, 3000), [-2**31, 2**31 - 1, 0, 1, -1, 2**20, -2**20]])
    mult = np.concatenate([rng.integers(2**30, 2**31, 3000), [2**31 - 1, 2**30, 2**31 - 1, 2**30, 2**30, 2**30,
                                                              2**31 - 1]])
    shift = np.concatenate([rng.integers(-31, 8, 3000), [0, -1, 5, -31, 3, -20, 0]])
    small = shift > 0
    x[small] //= 2 ** 8  # a left shift must not overflow int32 (as in real layers)
    want = multiply_by_quantized_multiplier(x, mult, shift)
    got = mbqm(torch.from_numpy(x), torch.from_numpy(mult), torch.from_numpy(shift)).numpy()
    assert np.array_equal(got, want)
