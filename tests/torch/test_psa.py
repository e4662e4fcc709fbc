"""PSA, LERP-PSA and the linear-spline baseline: gradients, agreement on the grid, initialisation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dmxgen.compress.psa import PSA, LerpPSA, LinearSpline, lerp


def test_lerp_backward_passes_gradcheck_in_float64():
    torch.manual_seed(0)
    grid = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    # inside, outside [-2, 2] (extrapolation) and away from the knots (the kinks have no derivative)
    x = (torch.rand(3, 20, dtype=torch.float64) * 6 - 3).requires_grad_()
    knots = torch.linspace(-2, 2, 9, dtype=torch.float64)
    x.data += 0.01 * ((x.data[..., None] - knots).abs().min(-1).values < 0.01)
    assert torch.autograd.gradcheck(lambda a, b: lerp(a, b, 2.0), (x, grid))


def test_lerp_psa_parameter_gradients_match_autograd_through_psa():
    """The custom backward chained with PSA's analytic grid gradients equals plain autograd on
    the interpolation written with differentiable torch ops."""
    torch.manual_seed(1)
    m = LerpPSA(4, points=16, span=3.0, dim=-1).double()
    x = torch.randn(5, 4, dtype=torch.float64) * 2
    m(x).pow(2).sum().backward()
    ours = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    grid = m.grid()
    pos = (x.t() + 3.0) * (15 / 6.0)
    i = pos.floor().clamp(0, 14).long()
    t = pos - i
    y = grid.gather(1, i) + t * (grid.gather(1, i + 1) - grid.gather(1, i))
    y.t().pow(2).sum().backward()
    for a, p in zip(ours, m.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-12)


def test_psa_and_lerp_psa_agree_on_the_grid_points():
    torch.manual_seed(2)
    m = LerpPSA(6, points=64, span=4.0, dim=1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        xs = m.grid_x()[0]  # [G]
        x = xs.repeat(6, 1).t()[None]  # [1, G, 6]: every grid point in every feature
        x = x.permute(0, 2, 1)  # [1, 6, G]: features on dim 1
        assert torch.allclose(m(x), m.psa(x), atol=1e-5)


@pytest.mark.parametrize("fn, tolerance", [(F.relu, 0.12), (F.gelu, 0.06), (torch.tanh, 0.06)])
def test_fit_starts_close_to_the_activation_it_replaces(fn, tolerance):
    x = torch.linspace(-4, 4, 401)[None].repeat(3, 1)
    for m in (PSA(3, dim=0).fit(fn), LerpPSA(3, dim=0).fit(fn)):
        with torch.no_grad():
            err = (m(x) - fn(x)).abs().max().item()
        assert err < tolerance, (type(m).__name__, err)


def test_res_psa_adds_the_identity():
    torch.manual_seed(3)
    plain, res = PSA(2, dim=-1), PSA(2, dim=-1, residual=True)
    res.load_state_dict(plain.state_dict())
    x = torch.randn(7, 2)
    assert torch.allclose(res(x), plain(x) + x)


def test_linear_spline_needs_odd_knots_and_tv2_counts_slope_changes():
    with pytest.raises(ValueError, match="odd number of knots >= 3, got 8"):
        LinearSpline(2, knots=8)
    s = LinearSpline(1, knots=5, span=2.0, dim=-1)  # knots at -2..2, starts as ReLU: one kink of slope 1
    assert s.tv2().item() == pytest.approx(1.0)
    with torch.no_grad():
        s.coefficients.copy_(torch.linspace(-2, 2, 5)[None] * 0.5)  # a straight line: no slope change
    assert s.tv2().item() == pytest.approx(0.0)
    x = torch.tensor([[-3.0], [3.0]])  # outside: linear extrapolation
    assert torch.allclose(s(x), x * 0.5)


# -- into the integer graph: one G-point table per feature (ops/lut_interp.py) ----------------------
class TokenNet(torch.nn.Module):
    """Linear -> LERP-PSA over the features of [N, T, D] tokens -> Linear; and ResPSA on channels."""

    def __init__(self, act):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(6, 8), act, torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act = torch.nn.Conv2d(2, 4, 3, padding=1), PSA(4, dim=1, residual=True)
        self.head = torch.nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        return self.head(torch.flatten(self.act(self.conv(x)), 1))


NETS = {"lerp_psa_tokens": (lambda: TokenNet(LerpPSA(8, points=64, dim=-1).fit(F.gelu)), (64, 5, 6)),
        "spline_tokens": (lambda: TokenNet(LinearSpline(8, knots=17, dim=-1)), (64, 5, 6)),
        "res_psa_channels": (ConvNet, (64, 2, 5, 5)),
        "lerp_psa_16_points": (lambda: TokenNet(LerpPSA(8, points=16, dim=-1).fit(torch.tanh)), (64, 4, 6))}


def compressed(name):
    import dmxgen

    make, shape = NETS[name]
    torch.manual_seed(0)
    net = make().eval()
    with torch.no_grad():
        for p in net.act.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # away from the initial curve: a learnt one
    x = torch.randn(*shape)
    m = dmxgen.Model(net).transform(None)
    with m.calibrating():
        m(x)
    return m.eval(), x


@pytest.mark.parametrize("name", list(NETS))
def test_learnable_activations_export_as_tables_equal_to_the_fake_quantized_model(name):
    import numpy as np

    from dmxgen.api import reference_outputs

    m, x = compressed(name)
    g = m.to_graph(x[:1])
    op = next(op for op in g.ops if op.kind == "lut_interp")
    assert op.a.points == (16 if name.endswith("16_points") else 64)
    assert np.size(op.a.table) == 8 * op.a.points if "tokens" in name or "points" in name else 4 * 64
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"


def test_a_lerp_psa_model_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save

    from .conftest import export_and_verify

    m, x = compressed("lerp_psa_tokens")
    export_and_verify(save(m, tmp_path / "psa.pt2", x), tmp_path / "c", "--target", "c,hls")


# -- the config key: approximation_function swaps an activation module for a learnable one -----------
class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


@pytest.mark.parametrize("spelled, points", [("LERP_PSA{16,3}", 16), ("LERP_PSA", 64), ("PSA{4}", 64),
                                             ("SPLINE{9,2}", 64)])
def test_config_key_swaps_the_activation_and_starts_from_it(spelled, points):
    import numpy as np

    import dmxgen
    from dmxgen.api import reference_outputs

    torch.manual_seed(0)
    net = Mlp().eval()
    x = torch.randn(64, 5, 6)
    m = dmxgen.Model(net).transform({"act": {"approximation_function": spelled}})
    assert isinstance(net.act, torch.nn.GELU)  # the caller's network is left alone
    with m.calibrating():
        m(x)
    m.eval()
    with torch.no_grad():  # started close to the GELU it replaced
        assert (m(x) - net(x)).abs().max() < 0.15
    g = m.to_graph(x[:1])
    op = next(op for op in g.ops if op.kind == "lut_interp")
    assert op.a.points == points
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    assert np.array_equal(ref, m.output_codes(x).reshape(ref.shape))


@pytest.mark.parametrize("config, message", [
    ({"act": {"approximation_function": "LERP_PSA{48}"}}, "grid points must be a power of two"),
    ({"act": {"approximation_function": "SPLINE{8}"}}, "odd number of knots"),
    ({"act": {"approximation_function": "PSA{2,3}"}}, "PSA takes at most 1 values"),
    ({"fc1": {"approximation_function": "PSA{8}"}}, "replaces an elementwise activation module"),
])
def test_config_key_refusals_are_one_line(config, message):
    import dmxgen
    from dmxgen.errors import DmxError

    with pytest.raises(DmxError, match=message):
        dmxgen.Model(Mlp()).transform(config)
