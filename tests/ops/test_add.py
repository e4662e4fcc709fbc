"""ADD: broadcasting (constant scalar, per-channel constant, [1,h,w,c]+[1,1,1,c]), scales, activations, saturation;
int16 (16x8): LiteRT's general and power-of-two paths, TFLite Micro's general one, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from dmxgen.ops.add import AddAttrs, kernel_constants, pot_operands
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16


def binary_model(opname, shape_a, shape_b, *, s=(0.05, 0.05, 0.1), zp=(-3, 7, -1), act="NONE",
                 const_b=False, seed=0):
    """a (input) op b (input, or a constant when const_b) -> broadcast output."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    a = m.tensor("a", shape_a, scale=s[0], zero_point=zp[0])
    data = rng.integers(-128, 128, size=shape_b).astype(np.int8) if const_b else None
    b = m.tensor("b", shape_b, scale=s[1], zero_point=zp[1], data=data)
    y = m.tensor("y", list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b))), scale=s[2], zero_point=zp[2])
    m.op(opname, [a, b], [y], fusedActivationFunction=act)
    return m, ([a] if const_b else [a, b]), y


CASES = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
    "same_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.05, 0.05, 0.05), "zp": (0, 0, 0)}),
    "scale_ratio_100": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.001, 0.1, 0.1)}),
    "scale_ratio_100_swapped": ((2, 3, 5), (2, 3, 5), {"s": (0.1, 0.001, 0.2)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
    "broadcast_rank_differs": ((1, 4, 4, 3), (3,), {}),
    "const_scalar": ((1, 4, 4, 3), (), {"const_b": True}),
    "const_scalar_1": ((1, 4, 4, 3), (1,), {"const_b": True, "zp": (-128, 127, 0)}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const_b": True}),
    # inputs all >= 0 (zp -128) into an output starting at -128, and all <= 0 (zp 127) into one ending at 127
    "zp_m128_out_m128": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (-128, -128, -128)}),
    "zp_127_out_127": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (127, 127, 127), "s": (0.02, 0.03, 0.05)}),
    "relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU", "zp": (0, 0, -60)}),
    "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (0.05, 0.05, 0.04), "zp": (0, 0, -100)}),
    "relu_n1_to_1": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU_N1_TO_1", "s": (0.01, 0.01, 0.01),
                                                  "zp": (0, 0, 0)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.1, 0.01)}),
    "output_scale_large": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.01, 0.02, 1.0), "zp": (5, -5, 0)}),
}


def case(name: str, seed: int | None = None) -> Case:
    shape_a, shape_b, kw = CASES[name]
    m, ins, y = binary_model("ADD", shape_a, shape_b, seed=len(name) if seed is None else seed, **kw)
    return Case(m, ins, [y], n=6, seed=7)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_add(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)


@pytest.mark.parametrize("target", targets("add"))
def test_add_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_add_saturates_both_rails(tmp_path):
    out = check_case(case("saturate", seed=0), tmp_path)
    assert (out == 127).mean() > 0.2 and (out == -128).mean() > 0.2


# -- int16 (TFLite's 16x8 scheme: int16 codes, zero point 0) --------------------------------------------------
# LiteRT's add.cc / sub.cc have two int16 paths: the general one (left shift 15; TFLite Micro's only one),
# and, with pot_scale_int16 (the schema's default) and power-of-two scales, one input shifted right and
# added. The reader takes the second only with LiteRT's semantics ("tflite").
P = 2.0 ** -12  # a power-of-two scale


def binary16(opname, shape_a, shape_b, *, s=(0.05, 0.05, 0.1), act="NONE", const=None, pot=False, seed=0):
    """a (op) b on int16 codes, scales s (int8 scales are divided by 256 by the table), `const` "a" or "b"
    a constant operand; `pot` is the options' pot_scale_int16."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()

    def operand(name, shape, k):
        data = rng.integers(-32768, 32768, size=shape).astype(np.int16) if const == name else None
        return m.tensor(name, shape, "int16", scale=s[k], zero_point=0, data=data)

    a, b = operand("a", shape_a, 0), operand("b", shape_b, 1)
    y = m.tensor("y", list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b))), "int16", scale=s[2], zero_point=0)
    m.op(opname, [a, b], [y], fusedActivationFunction=act, **({} if opname == "MUL" else {"potScaleInt16": pot}))
    return m, [t for t, name in ((a, "a"), (b, "b")) if name != const], y


def _s(*scales):
    return tuple(x / 256 for x in scales)


CASES16 = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.05, 0.05, 0.1)}),
    "same_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.05, 0.05, 0.05)}),
    "scale_ratio_100": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.001, 0.1, 0.1)}),
    "scale_ratio_100_swapped": ((2, 3, 5), (2, 3, 5), {"s": _s(0.1, 0.001, 0.2)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {"s": _s(0.05, 0.05, 0.1)}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {"s": _s(0.05, 0.05, 0.1)}),
    "broadcast_rank_differs": ((1, 4, 4, 3), (3,), {"s": _s(0.05, 0.03, 0.1)}),
    "const_scalar": ((1, 4, 4, 3), (), {"const": "b", "s": _s(0.05, 0.05, 0.1)}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const": "b", "s": _s(0.05, 0.02, 0.06)}),
    "relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU", "s": _s(0.05, 0.05, 0.1)}),
    "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (4e-4, 4e-4, 4e-4)}),  # 6 is code 15000
    "relu_n1_to_1": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU_N1_TO_1", "s": (1e-4, 1e-4, 1e-4)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.1, 0.1, 0.01)}),
    "output_scale_large": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.01, 0.02, 1.0)}),
    "pot_flag_other_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": _s(0.05, 0.05, 0.1), "pot": True}),  # general
    # pot_scale_int16 and powers of two: LiteRT's other path (TFLite Micro: the general one)
    "pot_second_shifted": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (P, P / 4, P), "pot": True}),
    "pot_first_shifted": ((2, 3, 5), (2, 3, 5), {"s": (P / 32, P, P), "pot": True}),
    "pot_equal": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (P, P, P), "pot": True}),
    "pot_relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (P, P / 2, P), "pot": True, "act": "RELU"}),
    "pot_shift_15": ((1, 4, 8), (1, 4, 8), {"s": (P * 2**-15, P, P), "pot": True}),
    # CheckedLog2 takes a scale within 1e-3 (in log2) of a power of two for one, and the path ignores the rest
    "pot_near_powers": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (P * 1.0004, P / 4 * 0.9997, P), "pot": True}),
    "general_pot_scales_flag_off": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (P, P / 4, P), "pot": False}),
}
POT16 = [name for name in CASES16 if name.startswith("pot_") and name != "pot_flag_other_scales"]


def case16(opname: str, name: str, table=CASES16) -> Case:
    shape_a, shape_b, kw = table[name]
    m, ins, y = binary16(opname, shape_a, shape_b, seed=len(name), **kw)
    return Case(m, ins, [y], n=6, seed=16)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES16))
def test_add_int16(tmp_path, name, golden):
    out = check_case(case16("ADD", name), tmp_path, goldens=(golden,), min_distinct=3)
    assert out.dtype == np.int16


def test_add_int16_saturates_both_rails(tmp_path):
    out = check_case(case16("ADD", "saturate"), tmp_path)
    assert (out == 32767).mean() > 0.2 and (out == -32768).mean() > 0.2


@pytest.mark.parametrize("opname", ["ADD", "SUB"])
def test_int16_pot_path_is_litert_s_only(tmp_path, opname):
    """With pot_scale_int16 and power-of-two scales LiteRT's reader takes the power-of-two path, TFLite
    Micro's the general one; their codes differ on ties (x + round(y / 4) against round(x + y / 4))."""
    c = case16(opname, "pot_second_shifted")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    lite, micro = load_tflite(path, semantics="tflite"), load_tflite(path, semantics="tflm")
    assert lite.ops[0].attrs["scaling"] == "pot" and (lite.ops[0].attrs["input2_shift"], ) == (-2,)
    assert micro.ops[0].attrs.get("scaling", "general") == "general" and micro.ops[0].attrs["left_shift"] == 15
    b = -2 if opname == "ADD" else 2  # 1 + (-2) / 4, 1 - 2 / 4: ties of the opposite sign
    x = [np.full((1, 4, 4, 3), v, np.int16) for v in (1, b)]
    got = [reference.run(g, x)[g.outputs[0]] for g in (lite, micro)]
    assert np.all(got[0] == 0) and np.all(got[1] == 1)


@pytest.mark.parametrize("name, scaling", [("pot_near_powers", "pot"), ("pot_equal", "pot"),
                                           ("general_pot_scales_flag_off", "general"),
                                           ("pot_flag_other_scales", "general")])
def test_int16_reader_takes_litert_s_path(tmp_path, name, scaling):
    """Power-of-two path iff pot_scale_int16 and every scale within CheckedLog2's 1e-3 of a power of two."""
    c = case16("ADD", name)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    assert g.ops[0].attrs.get("scaling", "general") == scaling


@pytest.mark.parametrize("shifts", [(0, 0), (0, -1), (0, -2), (-3, 0), (0, -14), (-15, 0)])
def test_pot_path_equals_the_general_kernel_constants(shifts):
    """The C kernels run the power-of-two path as general constants (kernel_constants): equal codes for
    every int16 code against random partners, before the clamp."""
    a = AddAttrs(0, 0, 0, 0, 0, shifts[0], 0, shifts[1], 0, 0, "NONE", -32768, 32767, scaling="pot")
    k = kernel_constants(a)
    x = np.arange(-32768, 32768, dtype=np.int64)
    y = np.random.default_rng(1).permutation(x)
    p, q = pot_operands(x, y, a)
    s1 = mbqm((x + k["in1_offset"]) << k["left_shift"], k["in1_mult"], k["in1_shift"])
    s2 = mbqm((y + k["in2_offset"]) << k["left_shift"], k["in2_mult"], k["in2_shift"])
    assert np.array_equal(s1, p) and np.array_equal(s2, q)
    for raw in (p + q, p - q):
        assert np.array_equal(mbqm(raw, k["out_mult"], k["out_shift"]) + k["out_offset"], raw)


@pytest.mark.parametrize("kw, message", [
    ({"s": (P, P / 2, P / 2), "pot": True}, r"int16 ADD with power-of-two scales 0\.000244141, 0\.00012207 -> "
                                            r"0\.00012207: LiteRT needs the output scale equal to one input's"),
    ({"s": (P / 2, P / 4, P), "pot": True}, r"LiteRT needs the output scale equal to one input's"),
    # gemmlowp's RoundingDivideByPOT on int16 codes (LiteRT) wraps its mask beyond 15
    ({"s": (P * 2**-16, P, P), "pot": True}, r"a right shift of 16 exceeds the 15 of LiteRT's int16 power-of-two"),
])
def test_add_int16_pot_refusals(tmp_path, kw, message):
    m, ins, y = binary16("ADD", (1, 4), (1, 4), **kw)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, ins, [y]))
    load_tflite(save(m, tmp_path, ins, [y]), semantics="tflm")  # TFLite Micro: the general path


def test_add_int16_output_multiplier_of_one_is_refused(tmp_path):
    m, ins, y = binary16("ADD", (1, 4), (1, 4), s=(1.0, 1.0, 2.0 / 2**15))  # left shift 15: 2 / (2^15 s_out) = 1
    for semantics in ("tflite", "tflm"):  # both abort in QuantizeMultiplierSmallerThanOneExp
        with pytest.raises(DmxError, match=r"int16 ADD output scale 6\.10352e-05 is too small for input scales 1 "
                                           r"and 1: the output multiplier is not below 1"):
            load_tflite(save(m, tmp_path, ins, [y]), semantics=semantics)


@pytest.mark.parametrize("opname", ["ADD", "SUB"])
@pytest.mark.parametrize("changes, message", [
    ({"input2_shift": -16}, r"power-of-two shifts 0, -16: LiteRT's int16 path shifts by at most 15"),
    ({"input1_shift": -1}, r"power-of-two shifts -1, -2: one must be 0"),
])
def test_pot_spec_refuses_what_litert_does_not_compute(tmp_path, opname, changes, message):
    """A graph not written by the frontend is held by Graph.validate to the power-of-two path LiteRT runs."""
    c = case16(opname, "pot_second_shifted")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    g.ops[0].attrs.update(changes)
    with pytest.raises(DmxError, match=message):
        g.validate()


def test_pot_scaling_is_int16_only(tmp_path):
    c = case("same_scales")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    g.ops[0].attrs.update(scaling="pot", input1_shift=0, input2_shift=0)
    with pytest.raises(DmxError, match=r"scaling 'pot' is TFLite's int16 path; the output is int8"):
        g.validate()


def test_add_int16_pot_does_not_broadcast_in_litert(tmp_path):
    m, ins, y = binary16("ADD", (1, 4, 3), (3,), s=(P, P / 2, P), pot=True)
    with pytest.raises(DmxError, match=r"int16 ADD with power-of-two scales \(pot_scale_int16\) does not "
                                       r"broadcast \[1, 4, 3\] and \[3\]"):
        load_tflite(save(m, tmp_path, ins, [y]))


def test_add_mixed_int8_int16_is_refused(tmp_path):
    m, ins, y = binary16("ADD", (1, 4), (1, 4))
    m.sg.tensors[y].type = S.TensorType.INT8
    with pytest.raises(DmxError, match=r"its tensors mix int16 and int8; they must share one dtype"):
        load_tflite(save(m, tmp_path, ins, [y]))


@pytest.mark.parametrize("target", targets16("add"))
def test_add_int16_on_targets(tmp_path, target):
    cases = {f"{name}_s16": case16("ADD", name) for name in CASES16}
    cases["same_shape_s8"] = case("same_shape")  # the int8 kernel (MVE) beside the int16 one in one build
    check_targets(tmp_path, target, cases, tflm=[f"{name}_s16" for name in POT16])


@pytest.mark.parametrize("target", [t for t in targets16("add") if t.values[0] == "m55"])
def test_add_int16_alone_on_the_m55(tmp_path, target):
    """No int8 ADD in the model: the MVE build's kernels.h declares dmx_add_t from the int16 variant."""
    check_targets(tmp_path, target, {"general_s16": case16("ADD", "relu")})
