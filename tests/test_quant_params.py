"""graph/quant_params.py: the requantization constants both frontends derive, checked by hand,
against exact rational arithmetic, and against LiteRT; and the one half-away rounding."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dmxgen.graph import fixedpoint as fp
from dmxgen.graph import quant_params as qp


def exact_multiplier_ok(real: float, multiplier: int, shift: int) -> bool:
    """TFLite's QuantizeMultiplier contract, in exact arithmetic: multiplier in [2**30, 2**31) and
    real * 2**(31 - shift) within half an LSB of it."""
    scaled = Fraction(real) * Fraction(2) ** (31 - shift)
    return 2**30 <= multiplier < 2**31 and abs(scaled - multiplier) <= Fraction(1, 2)


def test_add_constants_by_hand():
    """Scales 0.5, 0.25 -> 1.0: twice the larger input scale is 1.0, so the input reals are 0.5 and 0.25
    (2**30 with shifts 0 and -1) and the output real is 2**-20 (2**30 with shift -19)."""
    assert qp.add_params(0.5, 0.25, 1.0) == {
        "left_shift": 20, "input1_multiplier": 1 << 30, "input1_shift": 0, "input2_multiplier": 1 << 30,
        "input2_shift": -1, "output_multiplier": 1 << 30, "output_shift": -19}


@pytest.mark.parametrize("sa, sb, so", [(0.1, 0.3, 0.25), (0.0123, 0.0456, 0.05), (0.001, 0.1, 0.1),
                                        (0.05, 0.05, 0.1)])
def test_add_constants_in_exact_arithmetic(sa, sb, so):
    p = qp.add_params(sa, sb, so)
    sa, sb, so = (float(np.float32(s)) for s in (sa, sb, so))  # as a .tflite stores the scales
    twice = 2 * max(sa, sb)
    assert p["left_shift"] == 20
    assert exact_multiplier_ok(sa / twice, p["input1_multiplier"], p["input1_shift"])
    assert exact_multiplier_ok(sb / twice, p["input2_multiplier"], p["input2_shift"])
    assert exact_multiplier_ok(twice / (2**20 * so), p["output_multiplier"], p["output_shift"])
    assert max(p["input1_shift"], p["input2_shift"]) == 0  # the larger input is exactly one half


def test_conv_multipliers_per_channel():
    mult, shift = qp.conv_multipliers(0.5, [0.25, 0.1, 0.003], 0.0625)
    assert mult.dtype == np.int32 and shift.dtype == np.int32
    assert (int(mult[0]), int(shift[0])) == (1 << 30, 2)  # 0.5 * 0.25 / 0.0625 = 2
    for s, m, sh in zip([0.1, 0.003], mult[1:], shift[1:]):
        real = 0.5 * float(np.float32(s)) / 0.0625
        assert exact_multiplier_ok(real, int(m), int(sh))


def test_mul_float32_and_double_products():
    """LiteRT multiplies the scales in float32, TFLite Micro in double; these scales tell them apart
    (tests/ops/test_mul.py shows each against its interpreter)."""
    s1, s2, so = 0.09063765, 0.07989598, 0.92032963
    f32 = qp.mul_params(s1, s2, so, float32_product=True)
    f64 = qp.mul_params(s1, s2, so)
    assert f32 != f64
    a, b, o = (np.float32(v) for v in (s1, s2, so))
    assert exact_multiplier_ok(float(np.float32(a * b) / o), f32["output_multiplier"], f32["output_shift"])
    assert exact_multiplier_ok(float(a) * float(b) / float(o), f64["output_multiplier"], f64["output_shift"])
    assert qp.mul_params(0.5, 0.5, 0.125) == {"output_multiplier": 1 << 30, "output_shift": 2}


def test_requant_params():
    assert qp.requant_params(0.1, 0.1) == (1 << 30, 1)
    assert qp.requant_params(0.25, 1.0) == (1 << 30, -1)


def test_activation_ranges():
    assert qp.activation_range("NONE", 0.1, 3) == (-128, 127)
    assert qp.activation_range("RELU", 0.1, -10) == (-10, 127)
    assert qp.activation_range("RELU6", 0.05, -128) == (-128, -8)   # 6/0.05 = 120
    assert qp.activation_range("RELU6", 0.01, 0) == (0, 127)        # 600 saturates
    assert qp.activation_range("RELU_N1_TO_1", 0.1, 0) == (-10, 10)
    assert qp.activation_range(None, 0.1, 0, -8, 7) == (-8, 7)
    with pytest.raises(ValueError, match="unsupported fused activation TANH"):
        qp.activation_range("TANH", 0.1, 0)


def test_clamp_ranges_and_names():
    # 0.25 / 0.1 = 2.5 rounds away from zero to 3; -0.25 / 0.1 to -3
    assert qp.clamp_range(-0.25, 0.25, 0.1, 0) == (-3, 3)
    assert qp.clamp_range(None, 2.0, 0.5, 1, -8, 7) == (-8, 5)
    assert [qp.activation_name(*b) for b in [(None, None), (0.0, None), (0, 6), (-1.0, 1.0), (-2.0, 2.0)]] == \
        ["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "CLAMP"]


def test_the_pytorch_side_uses_these_derivations():
    from dmxgen.compress import intops

    for name in ("add_params", "mul_params", "conv_multipliers", "requant_params"):
        assert getattr(intops, name) is getattr(qp, name)
    assert intops.clamp_codes((0.0, 6.0), 0.05, -128, -128, 127) == ("RELU6", -128, -8)
    assert intops.clamp_codes((-0.25, 0.25), 0.1, 0, -128, 127) == ("CLAMP", -3, 3)


def _add_model(tmp_path, scales, zero_points, act="NONE"):
    from dmxgen.testing.tflite_builder import ModelBuilder

    m = ModelBuilder()
    a = m.tensor("a", [256, 1], scale=scales[0], zero_point=zero_points[0])
    b = m.tensor("b", [1, 256], scale=scales[1], zero_point=zero_points[1])
    y = m.tensor("y", [256, 256], scale=scales[2], zero_point=zero_points[2])
    m.op("ADD", [a, b], [y], fusedActivationFunction=act)
    return m.save(tmp_path / "add.tflite", [a, b], [y])


@pytest.mark.parametrize("scales, zps, act", [((0.0123, 0.0456, 0.05), (-3, 7, -1), "NONE"),
                                              ((0.1, 0.001, 0.07), (0, 0, -60), "RELU6"),
                                              ((0.005, 0.0025, 0.02), (10, -10, 0), "RELU_N1_TO_1")])
def test_frontend_add_matches_litert_on_every_input_pair(tmp_path, scales, zps, act):
    """The TFLite frontend's ADD constants are add_params' and give LiteRT's output for all 65,536 int8 pairs."""
    pytest.importorskip("ai_edge_litert")
    from dmxgen import reference
    from dmxgen.frontends.tflite import load_tflite
    from dmxgen.goldens import run_golden

    path = _add_model(tmp_path, scales, zps, act)
    graph = load_tflite(path)
    (op,) = graph.ops
    s = [float(graph.tensors[n].quant.s) for n in (*op.inputs, op.outputs[0])]
    assert {k: op.attrs[k] for k in qp.add_params(*s)} == qp.add_params(*s)
    assert (op.attrs["act_min"], op.attrs["act_max"]) == qp.activation_range(act, s[2], zps[2])
    grid = np.arange(-128, 128, dtype=np.int8)
    inputs = [grid.reshape(256, 1), grid.reshape(1, 256)]
    gold = run_golden(path, inputs)[0]
    ours = reference.run(graph, inputs)[graph.outputs[0]]
    np.testing.assert_array_equal(ours, gold)
    assert np.unique(gold).size > 20


# -- round half away from zero: one definition, and its torch twin --------------------------------

TIES = [-3.5, -2.5, -1.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 3.5, 2.4999, -2.5001, 1e15 + 0.5, -(1e15 + 0.5)]


def test_round_half_away_on_ties():
    got = fp.round_half_away_array(TIES)
    assert got.tolist() == [-4, -3, -2, -1, 0, 0, 1, 2, 3, 4, 2, -3, 1e15 + 1, -(1e15 + 1)]
    assert [fp.round_half_away(x) for x in (-2.5, 2.5, -0.5, 0.5)] == [-3, 3, -1, 1]


def test_round_half_away_just_below_a_half():
    """0.49999999999999994 + 0.5 is 1.0 in double, so floor(x + 0.5) rounds it up; std::round gives 0."""
    below = np.nextafter(0.5, 0.0)
    assert fp.round_half_away(below) == 0 and fp.round_half_away(-below) == 0
    assert fp.round_half_away(np.nextafter(2.5, 0.0)) == 2
    big = 2.0**52 + 1  # odd: big + 0.5 is not a double
    assert fp.round_half_away(big) == 2**52 + 1


def test_torch_rounding_equals_the_one_definition():
    torch = pytest.importorskip("torch")
    from dmxgen.compress.quant import round_half_away as torch_round

    rng = np.random.default_rng(0)
    ties = np.arange(-300, 300) + 0.5
    below = np.nextafter(np.float32(ties), np.float32(0)).astype(np.float32)
    values = [ties, below, rng.normal(scale=50, size=10000), rng.uniform(-2, 2, size=10000)]
    for v in values:
        for dtype in (torch.float32, torch.float64):
            x = torch.tensor(v, dtype=dtype)
            want = fp.round_half_away_array(x.double().numpy())
            assert torch_round(x).double().numpy().tolist() == want.tolist(), dtype
    # float32's largest value below one half: floor(x + 0.5) in float32 would give 1
    assert torch_round(torch.tensor([np.nextafter(np.float32(0.5), np.float32(0))])).tolist() == [0.0]
