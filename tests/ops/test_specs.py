"""The op specs (dmxgen/ops/<kind>.py): one per kind, attrs checked where an Op is built,
and the graph, planner and reference reading their traits instead of lists of their own."""
from __future__ import annotations

import dataclasses
import importlib
import typing
from pathlib import Path

import numpy as np
import pytest

from dmxgen import ops, reference
from dmxgen.errors import DmxError
from dmxgen.graph import OP_KINDS, Graph, Op, Tensor
from dmxgen.graph.tensor import DTYPES
from dmxgen.ops import SPECS, OpSpec, spec
from dmxgen.plan import plan_memory

ACT = {"activation": "NONE", "act_min": -128, "act_max": 127}
CONV = dict(ACT, stride=(1, 1), dilation=(1, 1), pad=(0, 0, 0, 0), input_offset=0, output_offset=0,
            multiplier=np.array([1 << 30], np.int32), shift=np.array([1], np.int32))
BINARY = dict(ACT, input1_offset=0, input2_offset=0, output_offset=0, output_multiplier=1 << 30, output_shift=1)
POOL = dict(ACT, filter=(1, 1), stride=(1, 1), pad=(0, 0, 0, 0))
REQUANTIZE = {"input_offset": 0, "output_offset": 0, "multiplier": 1 << 30, "shift": 1}

# One complete, valid attrs dict per kind, written out here (or, for a kind added since, as
# VALID_ATTRS in its own tests/ops/test_<kind>.py) rather than taken from the specs, so that a
# spec that stops accepting real attrs fails this test.
VALID = {
    "conv2d": [CONV],
    "depthwise_conv2d": [dict(CONV, depth_multiplier=1)],
    "fully_connected": [dict(ACT, input_offset=0, output_offset=0, batches=1, rounding="single",
                             multiplier=np.array([1 << 30], np.int32), shift=np.array([1], np.int32))],
    "add": [dict(BINARY, left_shift=20, input1_multiplier=1 << 30, input1_shift=0, input2_multiplier=1 << 30,
                 input2_shift=0)],
    "mul": [BINARY],
    "avg_pool2d": [POOL],
    "max_pool2d": [POOL],
    "reshape": [{}],
    "softmax": [{"beta": 1.0, "input_scale": 0.1, "table": np.ones(256, np.float32), "output_scale": 1 / 256}],
    "softmax_gemmlowp": [{"beta": 1.0, "input_scale": 0.1, "input_multiplier": 1 << 30, "input_left_shift": 20,
                          "diff_min": -248}],
    "quantize": [{"scale": 0.5, "zero_point": -1}],
    "requantize": [REQUANTIZE],
    "dequantize": [{"scale": 0.5, "zero_point": -1}],
    "pad": [{"paddings": ((0, 0), (1, 1)), "value": -128}],
    "reduce_max": [{"axes": (0,)}],
    "mean_float": [{"axes": (0,)}],
    "mean": [{"axes": (0,), "input_offset": 0, "output_offset": 0, "count": 1,
              "multiplier": 1 << 30, "shift": 1, "mean_multiplier": 1 << 30, "mean_shift": 1}],
    "lut": [{"table": np.arange(-128, 128, dtype=np.int8)}],
    "concat": [{"axis": 0}],
}

for _kind in SPECS:
    _own = Path(__file__).with_name(f"test_{_kind}.py")
    if _kind not in VALID and _own.exists():
        VALID[_kind] = importlib.import_module(f"tests.ops.test_{_kind}").VALID_ATTRS


def test_every_kind_has_a_spec_in_its_own_module():
    assert set(OP_KINDS) == set(SPECS) == set(VALID) == set(reference.KERNELS)
    assert dict(OP_KINDS) == dict(ops.OP_KINDS)
    for kind, s in SPECS.items():
        assert isinstance(s, OpSpec) and s.kind == kind and spec(kind) is s
        assert type(s).__module__ == f"dmxgen.ops.{kind}"
        assert type(s).check is not OpSpec.check and type(s).reference is not OpSpec.reference, kind
        assert reference.KERNELS[kind] == s.reference
        assert dataclasses.is_dataclass(s.Attrs) and s.Attrs.__dataclass_params__.frozen
        assert s.summary and s.outputs == 1
        assert s.inputs and set(s.inputs) <= {"activation", "weights", "bias"}
        assert s.dtypes and set(s.dtypes) <= set(DTYPES)
        # no kind hides two ops behind a mode string any more
        assert not {"mode", "algorithm"} & set(typing.get_type_hints(s.Attrs)), kind
    with pytest.raises(ValueError, match="unknown op kind 'conv3d'"):
        spec("conv3d")


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_attrs_build_and_give_a_typed_frozen_view(kind):
    for attrs in VALID[kind]:
        op = Op("o", kind, ["x"], ["y"], dict(attrs))
        typed = op.a
        for key, value in attrs.items():
            assert getattr(typed, key) is value
        if typed.__dataclass_fields__:
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(typed, next(iter(typed.__dataclass_fields__)), 0)


def test_defaults_fill_the_typed_view_but_not_the_dict():
    op = Op("c", "conv2d", ["x", "w", ""], ["y"], dict(CONV))
    assert op.a.weight_bits == 8 and "weight_bits" not in op.attrs
    dw = Op("d", "depthwise_conv2d", ["x", "w", ""], ["y"], dict(CONV))
    assert dw.a.depth_multiplier == 1
    assert Op("f", "fully_connected", ["x", "w", ""], ["y"], dict(VALID["fully_connected"][0], rounding="double")
              ).a.rounding == "double"


def test_missing_attribute_names_op_and_key():
    attrs = dict(CONV)
    del attrs["dilation"]
    with pytest.raises(ValueError) as e:
        Op("conv_3", "conv2d", ["x", "w", ""], ["y"], attrs)
    assert str(e.value) == "op 'conv_3' (conv2d): missing attribute 'dilation'"


def test_misspelt_attribute_names_op_and_key():
    attrs = dict(CONV)
    attrs["strides"] = attrs.pop("stride")
    with pytest.raises(ValueError) as e:
        Op("conv_3", "conv2d", ["x", "w", ""], ["y"], attrs)
    assert str(e.value) == "op 'conv_3' (conv2d): unknown attribute 'strides' (did you mean 'stride'?)"
    with pytest.raises(ValueError) as e:
        Op("r", "reshape", ["x"], ["y"], {"shape": (2, 3)})
    assert str(e.value) == "op 'r' (reshape): unknown attribute 'shape' (reshape takes none)"


@pytest.mark.parametrize("key, value, expected", [
    ("stride", "11", "a tuple of 2 (int, int), got str '11'"),
    ("stride", (1, 1, 1), "a tuple of 2 (int, int), got tuple (1, 1, 1)"),
    ("pad", (0, 0, 0, 0.5), "a tuple of 4 (int, int, int, int), got tuple (0, 0, 0, 0.5)"),
    ("input_offset", 1.0, "int, got float 1.0"),
    ("act_min", True, "int, got bool True"),
    ("multiplier", np.array([0.5]), "int or a sequence of int, got ndarray array([0.5])"),
    ("activation", 0, "str, got int 0"),
])
def test_mistyped_attribute_names_op_key_and_types(key, value, expected):
    with pytest.raises(ValueError) as e:
        Op("conv_3", "conv2d", ["x", "w", ""], ["y"], dict(CONV, **{key: value}))
    assert str(e.value) == f"op 'conv_3' (conv2d): attribute {key!r} should be {expected}"


def test_each_former_mode_is_a_kind_with_its_own_required_attributes():
    with pytest.raises(ValueError) as e:
        Op("q", "requantize", ["x"], ["y"], {"input_offset": 0, "output_offset": 0, "multiplier": 1 << 30})
    assert str(e.value) == "op 'q' (requantize): missing attribute 'shift'"
    with pytest.raises(ValueError) as e:
        Op("q", "quantize", ["x"], ["y"], {"mode": "float", "scale": 0.5, "zero_point": -1})
    assert str(e.value) == "op 'q' (quantize): unknown attribute 'mode' (expected one of scale, zero_point)"
    with pytest.raises(ValueError) as e:
        Op("s", "softmax", ["x"], ["y"], dict(VALID["softmax_gemmlowp"][0]))
    assert str(e.value).startswith("op 's' (softmax): unknown attribute 'input_multiplier'")
    with pytest.raises(ValueError) as e:
        Op("s", "fully_connected", ["x", "w", ""], ["y"], dict(VALID["fully_connected"][0], rounding="twice"))
    assert "attribute 'rounding' should be one of 'single', 'away', 'double', 'reduced', got str 'twice'" in str(e.value)


def test_attributes_changed_after_building_are_checked_when_read():
    op = Op("c", "conv2d", ["x", "w", ""], ["y"], dict(CONV))
    op.attrs["weight_bitz"] = 4
    with pytest.raises(ValueError, match=r"unknown attribute 'weight_bitz' \(did you mean 'weight_bits'\?\)"):
        op.a


def _int8(name, shape, const=False):
    return Tensor(name, shape, "int8", data=np.zeros(shape, np.int8) if const else None)


def test_graph_weights_follow_the_weights_trait():
    """Graph.weights() reads the spec; the kinds with weights are the three it hard-coded before."""
    assert {k for k, s in SPECS.items() if s.weight_inputs} == {"conv2d", "depthwise_conv2d", "fully_connected", "lstm",
                                                               "gru"}
    g = Graph({t.name: t for t in (_int8("x", (1, 4)), _int8("w", (4, 4), const=True), _int8("y", (1, 4)))})
    for kind, attrs in VALID.items():
        s = spec(kind)
        op = Op("o", kind, ["x", "w", ""][:len(s.inputs)], ["y"], dict(attrs[0]))
        got = g.weights(op)
        if s.weight_inputs:
            # the first weight input (an lstm has nine: the gates' input, recurrent and projection weights)
            assert s.weight_inputs == {"lstm": (1, 2, 3, 4, 5, 6, 7, 8, 15), "gru": (1, 2, 3, 4, 5, 6)}.get(kind, (1,))
            assert got is g.tensors["w"]
        else:
            assert got is None


def test_plan_in_place_follows_the_inplace_trait():
    """plan_memory puts an op's output over a dying same-shaped input exactly when the spec allows it."""
    cases = [(kind, attrs) for kind, many in VALID.items() for attrs in many]
    allowed = set()
    for kind, attrs in cases:
        s = spec(kind)
        tensors = [_int8(n, (1, 4)) for n in ("i", "x", "y", "z")] + [_int8("k", (1, 4), const=True)]
        table = {"table": np.arange(-128, 128, dtype=np.int8)}
        op = Op("o", kind, (["x"] + ["k"] * (len(s.inputs) - 1)), ["y"], dict(attrs))
        # i -> lut -> x (an arena tensor) -> op -> y -> lut -> z: x dies at the op
        g = Graph({t.name: t for t in tensors}, [Op("a", "lut", ["i"], ["x"], table), op,
                                                 Op("b", "lut", ["y"], ["z"], table)], ["i"], ["z"])
        in_place = 1 in plan_memory(g).inplace
        assert in_place == s.inplace(op), (kind, attrs)
        if in_place:
            allowed.add(kind)
    # the kinds plan.py listed before the specs existed (requantize was quantize in mode "requantize")
    # and the binary elementwise kinds added since
    assert allowed == {"add", "mul", "lut", "requantize"} | {"sub", "maximum", "minimum", "lut_interp", "affine", "prelu",
                                                                 "squared_difference", "logistic16", "tanh16"}


def _graph(x, out_dtype, kind, attrs, consts=()):
    tensors = [Tensor("x", x.shape, "int8"), Tensor("y", (1, 3), out_dtype)] + list(consts)
    ins = ["x"] + [t.name for t in consts]
    return Graph({t.name: t for t in tensors}, [Op("o", kind, ins, ["y"], attrs)], ["x"], ["y"])


def test_reference_clamps_int16_outputs_to_int16():
    """The clamp is by the output tensor's dtype: int16 saturates at int16's bounds, it does not wrap."""
    # fully_connected with multiplier 2**30, shift 1 (real 1.0): the output is the accumulator.
    w = np.zeros((3, 300), np.int8)
    w[0], w[1], w[2, :3] = 1, -1, 1
    wide = dict(VALID["fully_connected"][0], act_min=-32768, act_max=32767, rounding="double")
    x = np.full((1, 300), 127, np.int8)
    for dtype, attrs, want in (("int16", wide, [32767, -32768, 381]),  # 38100, -38100, 381
                               ("int8", VALID["fully_connected"][0], [127, -128, 127])):
        g = _graph(x, dtype, "fully_connected", dict(attrs), [Tensor("w", w.shape, "int8", data=w)])
        y = reference.run(g, [x])["y"]
        assert y.dtype == np.dtype(dtype) and y.tolist() == [want]
    # requantize int8 -> int16: multiplier 2**30, shift 9 is x 256, then + 1000
    x = np.array([[-128, 0, 127]], np.int8)
    g = _graph(x, "int16", "requantize", dict(REQUANTIZE, shift=9, output_offset=1000))
    assert reference.run(g, [x])["y"].tolist() == [[-31768, 1000, 32767]]  # 127 * 256 + 1000 saturates
    g.validate()  # requantize has int16 kernels; lut (a table indexed by int8 codes) does not:
    g = _graph(np.zeros((1, 3), np.int8), "int16", "lut", dict(VALID["lut"][0]))
    with pytest.raises(DmxError, match=r"int16 activations are not supported \(supported: int8\)$"):
        g.validate()


def test_input_roles():
    def op(kind, n):
        return Op("o", kind, [f"t{i}" for i in range(n)], ["y"], dict(VALID[kind][0]))

    assert spec("conv2d").roles(op("conv2d", 3)) == ("activation", "weights", "bias")
    assert spec("conv2d").activation_inputs(op("conv2d", 3)) == (0,)
    assert spec("add").activation_inputs(op("add", 2)) == (0, 1)
    assert spec("concat").activation_inputs(op("concat", 3)) == (0, 1, 2)
    assert spec("fully_connected").input_count_problem(op("fully_connected", 1)) == "expects 2 to 3 inputs, got 1"
    assert spec("concat").input_count_problem(op("concat", 0)) == "expects 1 or more inputs, got 0"


def test_op_input_and_output_counts_come_from_the_spec():
    g = Graph({t.name: t for t in (_int8("x", (1, 4)), _int8("y", (1, 4)), _int8("z", (1, 4)))},
              [Op("a", "add", ["x"], ["y"], dict(VALID["add"][0]))], ["x"], ["y"])
    with pytest.raises(DmxError, match=r"op 'a' \(add, output 'y'\): expects 2 inputs, got 1$"):
        g.validate()
    g.ops = [Op("r", "reshape", ["x"], ["y", "z"])]
    with pytest.raises(DmxError, match=r"op 'r' \(reshape, output 'y'\): has 2 outputs, reshape writes 1$"):
        g.validate()


def test_the_template_is_a_working_spec_that_is_not_registered():
    from types import SimpleNamespace

    from dmxgen.ops import _template

    assert "template" not in SPECS
    t = _template.Template()
    op = SimpleNamespace(name="t", kind="template", attrs={"stride": (1, 1), "output_offset": 3,
                                                           "act_min": -128, "act_max": 127})
    op.a = t.attrs(op)
    assert op.a.flag == 0
    y = t.reference(op, [np.array([125, -128], np.int8)], Tensor("y", (2,), "int8"))
    assert y.dtype == np.int8 and y.tolist() == [127, -125]
    assert t.check(op, [Tensor("x", (2,), "int8")], Tensor("y", (3,), "int8")) == (
        "output shape [3] should be the input's [2]")
