"""layer_norm: the integer LayerNorm against float within its documented bound, on every target,
and from PyTorch (nn.LayerNorm, F.layer_norm) bit-exact with the fake-quantized model.

The float side is computed here independently (float64 mean, variance, sqrt); the bound is
docs/compression.md "LayerNorm arithmetic": |code - float code| <= 0.5 + |g| 2^-17 (1 + |n|)
+ (|n| + 2^-17 (1 + |n|)) 2^-(out_shift - 15)
+ 2^-(out_shift + 1), g = gamma / s_out, n the normalized value.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.graph import Graph, Op, QuantParams, Tensor
from dmxgen.graph import fixedpoint as fp
from dmxgen.ops.layer_norm import MAX_COLS, isqrt62, layer_norm_attrs, rdbpot

from ._harness import Case
from ._targets import check_targets, targets

VALID_ATTRS = [{"gamma": (100, -3), "beta": (0, 7), "eps_term": 5, "out_shift": 20, "output_offset": 0,
                "act_min": -128, "act_max": 127},
               {"gamma": np.array([1], np.int16), "beta": np.array([-4], np.int32), "eps_term": 0, "out_shift": 1,
                "output_offset": -3, "act_min": -20, "act_max": 50}]


def layer(cols: int, seed: int, s_in=0.03, s_out=0.02, zp_out=3, eps=1e-5, gamma_scale=1.0, beta_scale=0.5,
          act=(-128, 127)):
    """(attrs, float params) of one layer: random gamma around gamma_scale, beta around 0."""
    rng = np.random.default_rng(seed)
    gamma = rng.normal(gamma_scale, 0.3 * abs(gamma_scale) + 1e-3, cols)
    beta = rng.normal(0.0, beta_scale, cols)
    attrs = layer_norm_attrs(s_in, s_out, zp_out, gamma, beta, eps, *act, layer="ln")
    return attrs, {"gamma": gamma, "beta": beta, "s_in": s_in, "s_out": s_out, "zp_out": zp_out, "eps": eps}


def graph(shape, attrs, s_in=0.03, zp_in=-5, s_out=0.02, zp_out=3) -> Graph:
    g = Graph(source="layer_norm test")
    g.add_tensor(Tensor("x", tuple(shape), "int8", QuantParams(np.array([s_in], np.float32), np.array([zp_in]))))
    g.add_tensor(Tensor("y", tuple(shape), "int8", QuantParams(np.array([s_out], np.float32), np.array([zp_out]))))
    g.ops.append(Op("ln", "layer_norm", ["x"], ["y"], attrs))
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    return g


def float_codes(x: np.ndarray, f: dict, zp_in: int = -5):
    """(float output codes before rounding, normalized values): LayerNorm in float64."""
    real = (x.astype(np.float64) - zp_in) * f["s_in"]
    n = (real - real.mean(-1, keepdims=True)) / np.sqrt(real.var(-1, keepdims=True) + f["eps"])
    return (f["gamma"] * n + f["beta"]) / f["s_out"] + f["zp_out"], n


def bound(attrs: dict, f: dict, n: np.ndarray) -> np.ndarray:
    g = np.abs(f["gamma"] / f["s_out"])
    k = attrs["out_shift"]
    dn = 2.0**-17 * (1 + np.abs(n))  # the normalized value's error
    return 0.5 + g * dn + (np.abs(n) + dn) * 2.0**-(k - 15) + 2.0**-(k + 1)


def inputs(shape, seed: int) -> np.ndarray:
    """Random rows, then the extremes: constant rows (variance 0), -128/127 alternating, one outlier."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=shape)
    rows = x.reshape(-1, shape[-1])
    if rows.shape[0] >= 5:
        rows[0], rows[1] = -128, 127  # constant rows at the ends of the range
        rows[2] = np.where(np.arange(shape[-1]) % 2, 127, -128)  # the largest variance
        rows[3] = 0
        rows[3, -1] = 127  # one outlier: the largest normalized value, sqrt(D - 1)
        rows[4] = rng.integers(-2, 3, size=shape[-1])  # a small variance: eps matters
    return x.astype(np.int8)


CASES = {  # name: (shape, layer kwargs)
    "d64": ((1, 10, 64), {}),
    "d1": ((1, 7, 1), {}),
    "d2": ((1, 9, 2), {"eps": 1e-6}),
    "d768": ((1, 6, 768), {"s_in": 0.1, "s_out": 0.05}),
    "d4096_tiny_eps": ((1, 5, 4096), {"eps": 1e-12}),
    "big_eps": ((1, 8, 32), {"eps": 4.0}),
    "negative_gamma": ((1, 6, 16), {"gamma_scale": -2.0}),
    "big_gamma_beta": ((1, 6, 24), {"gamma_scale": 300.0, "beta_scale": 200.0, "s_out": 0.5}),
    "clamped": ((2, 3, 4, 12), {"act": (-20, 50)}),
}


@pytest.mark.parametrize("name", list(CASES) + ["d32768"])
def test_reference_is_within_the_documented_bound_of_float(name):
    shape, kw = CASES.get(name, ((1, 6, MAX_COLS), {}))
    attrs, f = layer(shape[-1], seed=len(name), **{k: v for k, v in kw.items() if k != "act"})
    if "act" in kw:
        attrs.update(act_min=kw["act"][0], act_max=kw["act"][1])
    x = inputs(shape, seed=len(name) + 1)
    got = reference.run(graph(shape, attrs, s_in=f["s_in"], s_out=f["s_out"]), [x])["y"].astype(np.int64)
    want, n = float_codes(x, f)
    lo, hi = attrs["act_min"], attrs["act_max"]
    err = np.abs(got - np.clip(want, lo, hi))
    assert (err <= bound(attrs, f, n)).all(), f"max error {err.max():.4f} codes"
    assert (err <= 0.51).all()  # the bound is tight: within a hundredth of a code of rounding alone
    if shape[-1] > 1:  # not every code saturates: the test sees the normalization
        assert len(np.unique(got)) > 5


def test_constant_rows_give_beta_exactly():
    attrs, f = layer(16, seed=3)
    for eps_term in (0, attrs["eps_term"]):  # variance 0 with and without eps: 0 / sqrt(eps) = 0, no division by 0
        a = dict(attrs, eps_term=eps_term)
        x = np.stack([np.full(16, v, np.int8) for v in (-128, -1, 0, 55, 127)])[None]
        got = reference.run(graph(x.shape, a), [x])["y"].astype(np.int64)
        beta = fp.round_half_away_array(np.asarray(attrs["beta"]) / 2.0**attrs["out_shift"])
        assert np.array_equal(got, np.broadcast_to(np.clip(beta + 3, -128, 127), got.shape))


def test_one_feature_is_beta():
    # D = 1: x - mean is 0 whatever x is
    attrs, f = layer(1, seed=4)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256, 1)
    got = reference.run(graph(x.shape, attrs), [x])["y"]
    assert len(np.unique(got)) == 1
    assert int(got[0, 0, 0]) == fp.round_half_away(f["beta"][0] / f["s_out"]) + 3


def test_the_input_zero_point_cancels():
    attrs, _ = layer(32, seed=5)
    x = inputs((1, 8, 32), seed=6)
    a = reference.run(graph(x.shape, attrs, zp_in=-5), [x])["y"]
    b = reference.run(graph(x.shape, attrs, zp_in=100), [x])["y"]
    assert np.array_equal(a, b)


def test_integer_helpers_are_exact():
    rng = np.random.default_rng(0)
    r = np.concatenate([np.arange(0, 70), rng.integers(0, 2**62, 2000), 2**62 - np.arange(1, 10),
                        np.array([4**k for k in range(31)]), np.array([4**k - 1 for k in range(1, 32)])])
    assert [int(v) for v in isqrt62(r, np.where)] == [math.isqrt(int(v)) for v in r]
    x = rng.integers(-2**55, 2**55, 5000)
    e = rng.integers(0, 63, 5000)
    assert np.array_equal(rdbpot(x, e), fp.rounding_divide_by_pot(x, e))
    assert np.array_equal(rdbpot(torch.from_numpy(x), torch.from_numpy(e)).numpy(), fp.rounding_divide_by_pot(x, e))


@pytest.mark.parametrize("attrs, message", [
    ({"gamma": (1, 2, 3)}, r"gamma has 3 and beta 4 values, the last dim 4"),
    ({"gamma": (1, 2, 3, 40000)}, r"gamma does not fit int16"),
    ({"eps_term": -1}, r"eps_term -1 is outside 0..2\^61"),
    ({"out_shift": 63}, r"out_shift 63 is outside 1..62"),
    ({"act_min": -129}, r"int8 codes"),
])
def test_check_refuses_what_the_kernels_cannot_compute(attrs, message):
    base = {"gamma": (1, 2, 3, 4), "beta": (0, 0, 0, 0), "eps_term": 1, "out_shift": 20, "output_offset": 0,
            "act_min": -128, "act_max": 127}
    with pytest.raises(DmxError, match=message):
        graph((1, 2, 4), base | attrs)


@pytest.mark.parametrize("eps", [1e6, -1e-5, float("inf")])
def test_attrs_refuse_an_eps_that_does_not_fit_the_input_scale(eps):
    with pytest.raises(DmxError, match=r"layer 'ln': eps \S+ does not fit the input scale 0.0001 .*must be in 0..2\^61"):
        layer_norm_attrs(1e-4, 0.02, 0, np.ones(4096), np.zeros(4096), eps, -128, 127, "ln")


def test_attrs_refuse_gamma_and_beta_that_do_not_fit():
    with pytest.raises(DmxError, match=r"layer 'ln': gamma and beta over the output scale .* do not fit"):
        layer_norm_attrs(0.03, 1e-9, 0, np.ones(4), np.full(4, 10.0), 1e-5, -128, 127, "ln")


def case(name: str) -> Case:
    shape, kw = CASES[name]
    attrs, f = layer(shape[-1], seed=len(name), **{k: v for k, v in kw.items() if k != "act"})
    if "act" in kw:
        attrs.update(act_min=kw["act"][0], act_max=kw["act"][1])
    g = graph(shape, attrs, s_in=f["s_in"], s_out=f["s_out"])
    return Case(g, [], [], n=2, seed=7, extra=[[inputs(shape, seed=len(name) + 1)]])


@pytest.mark.parametrize("target", targets("layer_norm"))
def test_layer_norm_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


# -- PyTorch: nn.LayerNorm and F.layer_norm over the tokens' features ---------------------------
class TokenNorm(torch.nn.Module):
    """A Linear over tokens [N, T, D], its LayerNorm, a head."""

    def __init__(self, dim=16, affine=True):
        super().__init__()
        self.embed, self.head = torch.nn.Linear(6, dim), torch.nn.Linear(dim, 4)
        self.norm = torch.nn.LayerNorm(dim, elementwise_affine=affine)
        if affine:
            with torch.no_grad():
                self.norm.weight.uniform_(0.5, 1.5)
                self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.embed(x))))


class PreNormBlock(torch.nn.Module):
    """A pre-norm residual block: h + mlp(layer_norm(h)), the norm as F.layer_norm on the block's parameters."""

    def __init__(self, dim=12):
        super().__init__()
        self.embed, self.mlp = torch.nn.Linear(5, dim), torch.nn.Linear(dim, dim)
        self.gamma = torch.nn.Parameter(torch.rand(dim) + 0.5)
        self.beta = torch.nn.Parameter(torch.randn(dim) * 0.2)
        self.dim = dim

    def forward(self, x):
        h = self.embed(x)
        return h + self.mlp(F.layer_norm(h, (self.dim,), self.gamma, self.beta, 1e-5))


TORCH_CASES = {"tokens": (TokenNorm, (32, 7, 6)), "no_affine": (lambda: TokenNorm(affine=False), (32, 7, 6)),
               "prenorm": (PreNormBlock, (32, 5, 5))}


def torch_model(name: str):
    import dmxgen

    make, shape = TORCH_CASES[name]
    torch.manual_seed(0)
    x = torch.randn(*shape)
    m = dmxgen.Model(make().eval()).transform(None)
    with m.calibrating():
        m(x)
    return m.eval(), x


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_layer_norm_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    from dmxgen.api import reference_outputs

    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops].count("layer_norm") == 1
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"


def test_training_learns_gamma_and_beta_through_the_quantized_forward():
    m, x = torch_model("tokens")
    m.train()
    m(x).square().mean().backward()
    norm = m.float_net.norm
    assert norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0
    assert norm.bias.grad is not None and norm.bias.grad.abs().sum() > 0


def test_layer_norm_over_other_dims_is_refused_naming_the_layer():
    import dmxgen

    class TwoDims(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.norm = torch.nn.Linear(4, 4), torch.nn.LayerNorm((3, 4))

        def forward(self, x):
            return self.norm(self.fc(x))

    with pytest.raises(DmxError, match=r"layer 'norm' \(LayerNorm\): normalizes the last 2 dims; only a LayerNorm "
                                       r"over the last dim is supported"):
        dmxgen.Model(TwoDims()).transform(None)

    class ComputedShape(torch.nn.Module):
        def forward(self, x):
            return F.layer_norm(x, x.shape[-1:])

    with pytest.raises(DmxError, match=r"layer 'layer_norm' \(layer_norm\): give normalized_shape as numbers"):
        dmxgen.Model(ComputedShape()).transform(None)

    class AfterConv(torch.nn.Module):  # NCHW: the last torch dim is W, which the graph does not hold last
        def __init__(self):
            super().__init__()
            self.conv, self.norm = torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.LayerNorm(5)

        def forward(self, x):
            return self.norm(self.conv(x))

    m = dmxgen.Model(AfterConv()).transform(None)
    with pytest.raises(DmxError, match=r"layer 'norm': LayerNorm over the last dim of a NCHW tensor is not supported"):
        with m.calibrating():  # the first calibration batch runs the exporter's checks
            m(torch.randn(4, 2, 5, 5))


def test_torch_layer_norm_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save

    from tests.torch.conftest import export_and_verify

    from dmxgen.api import load

    m, x = torch_model("prenorm")
    path = save(m, tmp_path / "prenorm.pt2", x)
    # the saved program runs the frozen integer path (torch int64): the same values as the model
    assert torch.equal(load(path)(x[:1]), m(x[:1]))
    export_and_verify(path, tmp_path / "c")
