"""PRELU and LEAKY_RELU (one kind, prelu): broadcast alphas, scales, zero points, LiteRT's float32
multipliers and TFLite Micro's double ones; torch nn.PReLU with 1 and C parameters; the refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, compare, save
from ._targets import check_targets, targets, targets16
from ._torch import assert_codes_agree

VALID_ATTRS = [{"input_offset": 3, "alpha_offset": 0, "output_offset": -5, "multiplier_identity": 1 << 30,
                "shift_identity": 1, "multiplier_alpha": 1 << 30, "shift_alpha": -3, "alpha": (1, 2, 3)}]


def prelu_model(shape, alpha_shape, q_in=(0.05, -7), q_alpha=(0.01, 3), q_out=(0.04, 10), seed=0, alpha=None):
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", scale=q_in[0], zero_point=q_in[1])
    codes = rng.integers(-128, 128, size=alpha_shape) if alpha is None else np.asarray(alpha)
    a = m.tensor("alpha", alpha_shape, "int8", scale=q_alpha[0], zero_point=q_alpha[1], data=codes)
    y = m.tensor("y", shape, "int8", scale=q_out[0], zero_point=q_out[1])
    m.op("PRELU", [x, a], [y])
    return m, x, y


def leaky_model(shape, alpha, q_in=(0.05, -7), q_out=(0.04, 10)):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", scale=q_in[0], zero_point=q_in[1])
    y = m.tensor("y", shape, "int8", scale=q_out[0], zero_point=q_out[1])
    m.op("LEAKY_RELU", [x], [y], alpha=alpha)
    return m, x, y


PRELU_CASES = {
    "per_channel": ((1, 4, 5, 6), (6,), {}),
    "keras_full": ((1, 3, 4, 5), (3, 4, 5), {}),  # Keras PReLU's default: one alpha per value
    "shared_w": ((1, 3, 4, 5), (3, 1, 5), {}),  # shared_axes=[2]
    "one_alpha": ((1, 4, 4, 3), (1, 1, 1), {}),
    "same_shape": ((1, 2, 3, 4), (1, 2, 3, 4), {}),
    "rank2": ((3, 8), (8,), {}),
    "zp_extremes": ((1, 3, 3, 4), (4,), {"q_in": (0.02, 127), "q_alpha": (0.02, -128), "q_out": (0.05, 0)}),
    "saturate": ((1, 3, 3, 4), (4,), {"q_in": (0.1, 0), "q_alpha": (0.05, 0), "q_out": (0.01, 0)}),
    "gain_above_one": ((1, 3, 3, 4), (4,), {"q_in": (0.2, 0), "q_alpha": (0.03, 0), "q_out": (0.05, 0)}),
    # LiteRT's float32 s_in * s_alpha / s_out and TFLM's double one give different multipliers here
    "multiplier_precision": ((1, 4, 4, 8), (8,), {"q_in": (0.0123457, 5), "q_alpha": (0.00731, 1),
                                                  "q_out": (0.0211, -3)}),
}
LEAKY_CASES = {
    "leaky_01": ((1, 4, 4, 3), 0.1, {}),
    "leaky_02_zp": ((1, 4, 4, 3), 0.2, {"q_in": (0.03, 100), "q_out": (0.02, -100)}),
    "leaky_zero": ((2, 7), 0.0, {}),
    "leaky_above_one": ((1, 3, 3, 2), 1.7, {"q_in": (0.05, 0), "q_out": (0.1, 0)}),
}
CASES = {**{f"prelu_{k}": v for k, v in PRELU_CASES.items()}, **{k: v for k, v in LEAKY_CASES.items()}}


def case(name: str) -> Case:
    if name.startswith("leaky"):
        shape, alpha, kw = LEAKY_CASES[name]
        m, x, y = leaky_model(shape, alpha, **kw)
    else:
        shape, alpha_shape, kw = PRELU_CASES[name.removeprefix("prelu_")]
        m, x, y = prelu_model(shape, alpha_shape, seed=len(name), **kw)
    return Case(m, [x], [y], n=4, seed=5)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_prelu_matches_the_goldens(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)


def test_prelu_multipliers_follow_each_golden(tmp_path):
    """The precision case is one where LiteRT's float32 multiplier and TFLM's double one differ."""
    path = save(case("prelu_multiplier_precision").m, tmp_path, [0], [2])
    a, b = load_tflite(path).ops[0].a, load_tflite(path, semantics="tflm").ops[0].a
    assert (a.multiplier_alpha, a.shift_alpha) != (b.multiplier_alpha, b.shift_alpha)


def test_prelu_alpha_broadcast_is_a_repeating_table(tmp_path):
    m, x, y = prelu_model((1, 3, 4, 5), (3, 1, 5), alpha=np.arange(15).reshape(3, 1, 5))
    op = load_tflite(save(m, tmp_path, [x], [y])).ops[0]
    # shared along W: each row of 5 channels repeats 4 times, then the next H row
    assert list(op.a.alpha) == [v for h in range(3) for _ in range(4) for v in range(5 * h, 5 * h + 5)]
    m, x, y = prelu_model((1, 3, 4, 5), (5,), alpha=np.arange(5))
    assert list(load_tflite(save(m, tmp_path, [x], [y], "b")).ops[0].a.alpha) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("target", targets("prelu"))
def test_prelu_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=["prelu_multiplier_precision"])


def _refused(tmp_path, m, x, y, message):
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_prelu_refuses_a_per_channel_alpha_scale(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", (1, 2, 2, 3), "int8", scale=0.05, zero_point=0)
    a = m.tensor("alpha", (3,), "int8", scale=[0.1, 0.2, 0.3], zero_point=0, data=[1, 2, 3])
    y = m.tensor("y", (1, 2, 2, 3), "int8", scale=0.05, zero_point=0)
    m.op("PRELU", [x, a], [y])
    _refused(tmp_path, m, x, y, r"operator 0 \(PRELU, output 'y'\): alpha 'alpha' is quantized per channel; "
                                r"TFLite's PRELU reads one scale$")


def test_prelu_refuses_an_alpha_computed_at_run_time(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", (1, 2, 2, 3), "int8", scale=0.05, zero_point=0)
    a = m.tensor("alpha", (3,), "int8", scale=0.1, zero_point=0)
    y = m.tensor("y", (1, 2, 2, 3), "int8", scale=0.05, zero_point=0)
    m.op("PRELU", [x, a], [y])
    with pytest.raises(DmxError, match=r"\(PRELU, output 'y'\): alpha 'alpha' must be a constant tensor$"):
        load_tflite(m.save(tmp_path / "op.tflite", [x, a], [y]))


def test_prelu_refuses_an_alpha_that_does_not_broadcast(tmp_path):
    m, x, y = prelu_model((1, 2, 2, 3), (4,))
    _refused(tmp_path, m, x, y, r"alpha shape \[4\] does not broadcast to the input's \[1, 2, 2, 3\]$")


def test_leaky_relu_refuses_a_negative_alpha(tmp_path):
    m, x, y = leaky_model((1, 4), -0.5)
    _refused(tmp_path, m, x, y, r"\(LEAKY_RELU, output 'y'\): LEAKY_RELU alpha -0.5 is not supported "
                                r"\(only a finite alpha >= 0\)$")


# -- int16 LEAKY_RELU (TFLite's 16x8 scheme: QuantizeLeakyRelu<int16_t>, zero points 0) ----------------
LEAKY16 = {**{k: v for k, v in LEAKY_CASES.items()},
           "leaky_saturate": ((1, 5, 4, 3), 0.3, {"q_in": (0.2, 0), "q_out": (0.02, 0)}),  # x * 10: both rails
           "leaky_small_gain": ((1, 6, 7), 0.01, {"q_in": (0.013, 0), "q_out": (0.0171, 0)})}


def case16(name: str) -> Case:
    shape, alpha, kw = LEAKY16[name]
    m, x, y = leaky_model(shape, alpha, **kw)
    return Case(m.to_int16(), [x], [y], n=4, seed=6)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(LEAKY16))
def test_leaky_relu_int16_matches_the_goldens(tmp_path, name, golden):
    out = check_case(case16(name), tmp_path, goldens=(golden,))
    assert out.dtype == np.int16 and np.unique(out).size > 20
    if name == "leaky_saturate":
        assert (out == 32767).any() and (out == -32768).any()


def test_leaky_relu_multipliers_follow_each_golden(tmp_path):
    """Every int16 code through scales where LiteRT's float32 multipliers (s_in / s_out, s_in * alpha / s_out)
    and TFLite Micro's double ones differ, both branches: each golden agrees with its own only."""
    m, x, y = leaky_model((1, 256, 256), 0.2, q_in=(0.0924763605, 0), q_out=(0.0816664175, 0))
    m.to_int16()
    every = np.arange(-32768, 32768).astype(np.int16).reshape(1, 256, 256)
    path = save(m, tmp_path, [x], [y])
    a, b = load_tflite(path).ops[0].a, load_tflite(path, semantics="tflm").ops[0].a
    assert a.multiplier_identity != b.multiplier_identity and a.multiplier_alpha != b.multiplier_alpha
    for golden in ("tflite", "tflm"):
        assert np.unique(compare(path, [[every]], golden)).size > 30000


def test_prelu_int16_is_refused_naming_the_layer(tmp_path):
    """TFLite's PRELU has no int16 kernel in dmxgen (LEAKY_RELU has): one line, naming the operator."""
    m, x, y = prelu_model((1, 2, 2, 3), (3,))
    m.to_int16()
    _refused(tmp_path, m, x, y, r"operator 0 \(PRELU, output 'y'\): tensor 'x' is int16; only int8 is supported "
                                r"for this operator$")


@pytest.mark.parametrize("target", targets16("prelu"))
def test_leaky_relu_int16_on_targets(tmp_path, target):
    """With two int8 cases in the same build: the int8 and int16 kernels side by side."""
    cases = {"int8_leaky_01": case("leaky_01"), "int8_prelu": case("prelu_per_channel")}
    check_targets(tmp_path, target, cases | {name: case16(name) for name in LEAKY16})


# -- the PyTorch frontend: nn.PReLU with one parameter or one per channel --------------------------
class ConvPReLU(torch.nn.Module):
    """A conv's output through PReLU (NCHW: the channels are the graph's last dim), then a flatten."""

    def __init__(self, num_parameters):
        super().__init__()
        self.conv, self.act, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.PReLU(num_parameters), torch.nn.Linear(36, 2)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).flatten(1))


class FlatPReLU(torch.nn.Module):
    """PReLU over the features of a flattened NCHW tensor: alpha follows the graph's permuted order."""

    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = torch.nn.Conv2d(3, 2, 3), torch.nn.PReLU(18), torch.nn.Linear(18, 2)

    def forward(self, x):
        return self.fc(self.act(self.conv(x).flatten(1)))


class MlpPReLU(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act, self.b = torch.nn.Linear(5, 8), torch.nn.PReLU(8), torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.b(self.act(self.a(x)))


TORCH_CASES = {"one_parameter": (lambda: ConvPReLU(1), (32, 3, 5, 5)),
               "per_channel": (lambda: ConvPReLU(4), (32, 3, 5, 5)),
               "flattened": (FlatPReLU, (32, 3, 5, 5)), "mlp": (MlpPReLU, (32, 5))}


def torch_model(name: str):
    import dmxgen

    make, shape = TORCH_CASES[name]
    torch.manual_seed(0)
    net = make()
    with torch.no_grad():  # negative, small and above-one slopes
        net.act.weight.copy_(torch.linspace(-0.6, 1.4, net.act.num_parameters))
    x = torch.randn(*shape)
    m = dmxgen.Model(net.eval()).transform(None)
    with m.calibrating():
        m(x)
    return m.eval(), x


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_prelu_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    op = next(op for op in g.ops if op.kind == "prelu")
    assert len(op.a.alpha) == {"one_parameter": 1, "per_channel": 4, "flattened": 18, "mlp": 8}[name]
    assert_codes_agree(m, g, x)
    # and the prelu layer itself, code for code
    from dmxgen import reference
    from dmxgen.frontends.torch_graph import graph_and_tensors

    g, vals = graph_and_tensors(m, x[:1])
    node = next(n for n in m.body.graph.nodes if n.target == "act")
    seen = {}
    hook = m.body.act.register_forward_hook(lambda mod, args, out: seen.setdefault("y", out))
    with torch.no_grad():
        m(x[:1])
    hook.remove()
    got = reference.run(g, [m.quantize_input(x[:1])], keep=True)[vals[node].name]
    assert np.array_equal(got.astype(np.int64), vals[node].graph_codes(seen["y"]).reshape(got.shape))
    assert np.unique(got).size > 3


def test_a_flattened_prelu_takes_its_alpha_in_the_graphs_order():
    m, x = torch_model("flattened")
    g = m.to_graph(x[:1])
    alpha = np.asarray(next(op for op in g.ops if op.kind == "prelu").a.alpha)
    torch_codes = m.body.act.integer_params()["codes"]  # features in torch's order: channel-major
    assert np.array_equal(alpha, torch_codes.reshape(2, 9).T.reshape(-1))


def test_torch_prelu_on_targets(tmp_path):
    """The torch graphs (conv, prelu, reshape, FC) bit-exact in the host C build."""
    models = {name: torch_model(name) for name in TORCH_CASES}
    cases = {name: Case(m.to_graph(x[:1]), [], [], n=3, seed=1) for name, (m, x) in models.items()}
    check_targets(tmp_path, "c", cases)


def test_torch_prelu_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save as save_model

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("per_channel")
    export_and_verify(save_model(m, tmp_path / "prelu.pt2", x), tmp_path / "c")


def test_torch_prelu_over_dim_1_of_a_5d_tensor_is_refused_naming_the_layer():
    import dmxgen

    class FiveD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = torch.nn.Conv2d(3, 4, 1), torch.nn.PReLU(4)

        def forward(self, x):
            y = self.conv(x)
            return self.act(y.unsqueeze(2)).squeeze(2)

    m = dmxgen.Model(FiveD().eval()).transform(None)
    with pytest.raises(DmxError, match=r"^layer 'act': a per-channel layer over dim 1 of a rank-5 tensor is "
                                       r"not supported$"):
        with m.calibrating():
            m(torch.randn(4, 3, 3, 3))


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
def test_prelu_scales_whose_quotient_overflows_are_one_line_refusals(tmp_path, semantics):
    """Found by tools/fuzz_tflite.py: an input scale of 3.4e38 overflowed float32 with a RuntimeWarning."""
    import warnings

    m, x, y = prelu_model((1, 2, 2, 3), (3,), q_in=(3.4e38, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # float32 (LiteRT) overflows to inf; double (TFLM) gives 8.5e39, beyond the kernels' left shift
        want = {"tflite": r"requantization multiplier inf is not a finite positive number",
                "tflm": r"requantization multiplier 8.5e\+39 needs a left shift of 133"}[semantics]
        with pytest.raises(DmxError, match=want):
            load_tflite(save(m, tmp_path, [x], [y]), semantics=semantics)
