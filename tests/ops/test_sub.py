"""SUB: broadcasting (constant scalar on either side, channel vectors, both ways), scales, zero points,
fused activations, saturation, the ties where SUB is not ADD of a negated input, scales where float32
quotients would give other multipliers, the refusals, `a - b` from PyTorch, and int16 (16x8: test_add.py's
table of both LiteRT paths, with SUB's broadcasting power-of-two path)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from dmxgen.graph.quant_params import sub_params
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16
from ._torch import assert_codes_agree, calibrated

VALID_ATTRS = [{"input1_offset": 3, "input2_offset": -7, "output_offset": 1, "activation": "NONE",
                "act_min": -128, "act_max": 127, **sub_params(0.05, 0.03, 0.1)}]


def sub_model(shape_a, shape_b, *, s=(0.05, 0.05, 0.1), zp=(-3, 7, -1), act="NONE", const=None, seed=0):
    """a - b -> the broadcast output; `const` "a" or "b" makes that operand a constant."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()

    def operand(name, shape, k):
        data = rng.integers(-128, 128, size=shape).astype(np.int8) if const == name else None
        return m.tensor(name, shape, scale=s[k], zero_point=zp[k], data=data)

    a, b = operand("a", shape_a, 0), operand("b", shape_b, 1)
    y = m.tensor("y", list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b))), scale=s[2], zero_point=zp[2])
    m.op("SUB", [a, b], [y], fusedActivationFunction=act)
    return m, [t for t, name in ((a, "a"), (b, "b")) if name != const], y


# sa = 1, sb = (2**20 + 1) / 2**22: input 2's rescale lands on halves for odd codes, where the rounding
# (half up) is not symmetric, so -rescale(b) is not rescale(-b) (test_sub_is_not_add_of_a_negated_input)
TIE_SCALES = (1.0, float(np.float32((2**20 + 1) / 2**22)), 0.01851639710366726)
TIE_PAIRS = [(-31, -123), (31, 123)]
# LiteRT and TFLite Micro divide the scales in double (TFLM's sub_common.cc source reads float32, its
# interpreter computes double): with float32 quotients these scales give other codes for two pairs
FLOAT32_SCALES, FLOAT32_ZPS = (0.022001706063747406, 0.07723621279001236, 0.06873182952404022), (-6, -14, 8)
FLOAT32_PAIRS = [(-57, -53), (45, 25)]


def pair_sets(shape, pairs):
    return [[np.full(shape, a, np.int8), np.full(shape, b, np.int8)] for a, b in pairs]


CASES = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
    "same_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.05, 0.05, 0.05), "zp": (0, 0, 0)}),
    "scale_ratio_100": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.001, 0.1, 0.1)}),
    "scale_ratio_100_swapped": ((2, 3, 5), (2, 3, 5), {"s": (0.1, 0.001, 0.2)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
    "broadcast_first_operand": ((1, 1, 1, 3), (1, 4, 4, 3), {}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
    "broadcast_rank_differs": ((1, 4, 4, 3), (3,), {}),
    "rank5": ((2, 3, 1, 4, 5), (2, 1, 1, 4, 5), {}),  # merges to 3 loops: [2, 3, 20] and [2, 0, 20]
    "const_scalar": ((1, 4, 4, 3), (), {"const": "b"}),
    "const_scalar_minus_input": ((), (1, 4, 4, 3), {"const": "a"}),  # 1 - x
    "const_scalar_1": ((1, 4, 4, 3), (1,), {"const": "b", "zp": (-128, 127, 0)}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const": "b"}),
    # inputs all >= 0 (zp -128) into an output starting at -128, and all <= 0 (zp 127) into one ending at 127
    "zp_m128_out_m128": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (-128, -128, -128)}),
    "zp_127_out_127": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (127, 127, 127), "s": (0.02, 0.03, 0.05)}),
    "zp_opposite": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (-128, 127, 0), "s": (0.02, 0.02, 0.04)}),
    "relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU", "zp": (0, 0, -60)}),
    "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (0.05, 0.05, 0.04), "zp": (0, 0, -100)}),
    "relu_n1_to_1": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU_N1_TO_1", "s": (0.01, 0.01, 0.01), "zp": (0, 0, 0)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.1, 0.01)}),
    "output_scale_large": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.01, 0.02, 1.0), "zp": (5, -5, 0)}),
    "scales_tiny": ((1, 2, 3, 4), (1, 2, 3, 4), {"s": (1e-5, 3e-6, 2e-5), "zp": (1, -2, 3)}),
    "scales_huge": ((1, 2, 3, 4), (4,), {"s": (300.0, 1000.0, 2000.0), "zp": (0, 10, -10)}),
    "tie_not_negated_add": ((1, 8), (1, 8), {"s": TIE_SCALES, "zp": (0, 0, 0)}),
    "double_quotients": ((1, 8), (1, 8), {"s": FLOAT32_SCALES, "zp": FLOAT32_ZPS}),
}
EXTRA = {"tie_not_negated_add": TIE_PAIRS, "double_quotients": FLOAT32_PAIRS}


def case(name: str, seed: int | None = None) -> Case:
    shape_a, shape_b, kw = CASES[name]
    m, ins, y = sub_model(shape_a, shape_b, seed=len(name) if seed is None else seed, **kw)
    return Case(m, ins, [y], n=6, seed=7, extra=pair_sets(shape_a, EXTRA.get(name, [])))


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_sub(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)


@pytest.mark.parametrize("target", targets("sub"))
def test_sub_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=["double_quotients"])


def test_sub_saturates_both_rails(tmp_path):
    out = check_case(case("saturate", seed=0), tmp_path)
    assert (out == 127).mean() > 0.2 and (out == -128).mean() > 0.2


def test_sub_is_not_add_of_a_negated_input(tmp_path):
    """On the tie pairs, rescaling -b (ADD's arithmetic on a negated input) gives another code than
    subtracting the rescaled b; the golden tests above hold the reference to TFLite on those pairs."""
    p = sub_params(*TIE_SCALES)
    x, y = np.array(TIE_PAIRS).T.astype(np.int64) << 20
    s1 = mbqm(x, p["input1_multiplier"], p["input1_shift"])
    subtracted = mbqm(s1 - mbqm(y, p["input2_multiplier"], p["input2_shift"]), p["output_multiplier"], p["output_shift"])
    negated = mbqm(s1 + mbqm(-y, p["input2_multiplier"], p["input2_shift"]), p["output_multiplier"], p["output_shift"])
    assert np.all(subtracted != negated)


def test_sub_multipliers_are_double_quotients():
    """float32 quotients (TFLM's source) give other multipliers for these scales; the goldens say double."""
    f = np.float32
    twice_max = f(2) * f(FLOAT32_SCALES[1])
    p = sub_params(*FLOAT32_SCALES)
    assert p["input1_multiplier"] == 1223475422  # float32: 1223475456
    assert int(round(float(f(FLOAT32_SCALES[0]) / twice_max) * 2**33)) == 1223475456


@pytest.mark.parametrize("kw, message", [
    # an output multiplier of 1 aborts LiteRT and TFLM; above 1 TFLM aborts and LiteRT shifts by a negative
    # amount (it returns 1 for 0 - 0 with these scales)
    ({"s": (1.0, 1.0, 2.0 / 2**20)}, r"SUB output scale 1\.90735e-06 is too small for input scales 1 and 1: "
                                     r"the output multiplier 1 is not below 1"),
    ({"s": (1.0, 0.5, 1e-6)}, r"the output multiplier 1\.90735 is not below 1"),
    ({"act": 4}, r"fused activation TANH is not supported"),  # ActivationFunctionType.TANH
])
def test_sub_refusals(tmp_path, kw, message):
    m, ins, y = sub_model((1, 4), (1, 4), **kw)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, ins, [y]))


@pytest.mark.parametrize("key, value, message", [
    ("output_shift", 1, r"output_shift 1 is a left shift; TFLite's SUB only rescales down"),
    ("left_shift", 21, r"left_shift 21 is outside 0\.\.20"),
    ("input2_offset", 129, r"input2_offset 129 is not minus an int8 zero point"),
])
def test_sub_spec_refuses_what_would_overflow(tmp_path, key, value, message):
    """A graph not written by the frontends is held by Graph.validate to constants the kernels compute
    without int32 overflow (TFLite's right-shift-only rescaling, offsets of int8 zero points)."""
    m, ins, y = sub_model((1, 4), (1, 4))
    g = load_tflite(save(m, tmp_path, ins, [y]))
    g.ops[0].attrs[key] = value
    with pytest.raises(DmxError, match=message):
        g.validate()


def test_sub_refuses_shapes_that_do_not_broadcast(tmp_path):
    m = ModelBuilder()
    a, b = m.tensor("a", (1, 4), scale=0.1, zero_point=0), m.tensor("b", (1, 3), scale=0.1, zero_point=0)
    y = m.tensor("y", (1, 4), scale=0.1, zero_point=0)
    m.op("SUB", [a, b], [y])
    with pytest.raises(DmxError, match=r"input shapes \[1, 4\] and \[1, 3\] do not broadcast"):
        load_tflite(save(m, tmp_path, [a, b], [y]))


# -- int16 (TFLite's 16x8 scheme): ADD's int16 table (test_add.py: both LiteRT paths) and SUB's own cases -----
def _int16_cases():
    from .test_add import CASES16, P, _s

    return {**CASES16,
            "broadcast_first_operand": ((1, 1, 1, 3), (1, 4, 4, 3), {"s": _s(0.05, 0.05, 0.1)}),
            "const_scalar_minus_input": ((), (1, 4, 4, 3), {"const": "a", "s": _s(0.05, 0.05, 0.1)}),
            # LiteRT's BroadcastSub16POTSlow: the power-of-two path broadcasts in SUB (not in ADD)
            "pot_broadcast": ((1, 4, 4, 3), (3,), {"s": (P, P / 8, P), "pot": True}),
            "pot_broadcast_first": ((1, 1, 3), (2, 4, 3), {"s": (P / 2, P, P), "pot": True, "act": "RELU"})}


CASES16 = _int16_cases()
POT16 = [name for name in CASES16 if name.startswith("pot_") and name != "pot_flag_other_scales"]


def case16(name: str) -> Case:
    from .test_add import case16 as binary_case16

    return binary_case16("SUB", name, CASES16)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES16))
def test_sub_int16(tmp_path, name, golden):
    assert check_case(case16(name), tmp_path, goldens=(golden,), min_distinct=3).dtype == np.int16


def test_sub_int16_saturates_both_rails(tmp_path):
    out = check_case(case16("saturate"), tmp_path)
    assert (out == 32767).mean() > 0.2 and (out == -32768).mean() > 0.2


def test_sub_int16_output_multiplier_of_one_is_refused(tmp_path):
    from .test_add import binary16

    m, ins, y = binary16("SUB", (1, 4), (1, 4), s=(1.0, 1.0, 2.0 / 2**15))  # left shift 15: 2 / (2^15 s_out) = 1
    with pytest.raises(DmxError, match=r"the output multiplier 1 is not below 1"):
        load_tflite(save(m, tmp_path, ins, [y]))


@pytest.mark.parametrize("target", targets16("sub"))
def test_sub_int16_on_targets(tmp_path, target):
    cases = {f"{name}_s16": case16(name) for name in CASES16}
    cases["same_shape_s8"] = case("same_shape")  # the int8 kernel beside the int16 one
    check_targets(tmp_path, target, cases, tflm=[f"{name}_s16" for name in POT16])


# -- the PyTorch frontend: a - b of two activations ---------------------------------------------------------
class Residual(torch.nn.Module):
    """Two branches subtracted (a channel vector broadcast over the pixels), a ReLU fused into the SUB."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 1)
        self.pool, self.head = torch.nn.AdaptiveAvgPool2d(1), torch.nn.Linear(4 * 5 * 6, 3)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        y = torch.relu(a - self.pool(b))  # [N, 4, 5, 6] - [N, 4, 1, 1]
        return self.head(torch.sub(y, b).flatten(1))


class Difference(torch.nn.Module):
    """x.sub(y) of two Linear outputs, no activation."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 5), torch.nn.Linear(6, 5)

    def forward(self, x):
        return self.a(x).sub(self.b(x))


TORCH_CASES = {"residual": (Residual, (32, 3, 5, 6)), "difference": (Difference, (32, 6))}


def torch_model(name: str):
    net_cls, shape = TORCH_CASES[name]
    return calibrated(net_cls, shape)


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_sub_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    subs = [op for op in g.ops if op.kind == "sub"]
    assert len(subs) == (2 if name == "residual" else 1)
    assert_codes_agree(m, g, x)
    if name == "residual":
        assert subs[0].attrs["activation"] == "RELU"


def test_torch_sub_refuses_alpha():
    import dmxgen

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.sub(self.a(x), self.b(x), alpha=2)

    with pytest.raises(DmxError, match=r"layer 'sub' \(sub\) is not supported by the torch frontend: alpha=2"):
        dmxgen.Model(Scaled()).transform(None)


def test_torch_sub_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save as save_model

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("residual")
    export_and_verify(save_model(m, tmp_path / "residual.pt2", x), tmp_path / "c")
