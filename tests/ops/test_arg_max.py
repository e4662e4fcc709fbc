"""ARG_MAX: int8 along every axis (negative ones too), int32 and int64 indices, ties (the first index wins),
zero points at the range ends, on the targets (host C, HLS csim and the M55, both index types), and the
refusals; test_arg_min.py runs the same cases for ARG_MIN. The HLS top returns the indices on int32_t /
int64_t ports."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check, check_case, save
from ._targets import check_targets, targets

VALID_ATTRS = [{"axis": 1}, {"axis": 0}]
OUTPUT_TYPE = {"int32": 2, "int64": 4}


def arg_model(opname, shape, axis, *, index="int32", axis_dtype="int32", zp=3, output_type=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", scale=0.05, zero_point=zp)
    a = m.tensor("axis", [1], axis_dtype, data=[axis])
    y = m.tensor("y", [d for i, d in enumerate(shape) if i != axis % len(shape)], index)
    m.op(opname, [x, a], [y], outputType=OUTPUT_TYPE[output_type or index])
    return m, x, y


CASES = {  # shape, axis, index dtype, input zero point
    "last_axis": ((2, 3, 8), -1, "int32", 3),
    "first_axis": ((5, 4), 0, "int32", -128),
    "middle_axis": ((1, 2, 6, 5), 2, "int32", 127),
    "negative_axis": ((2, 7, 3), -2, "int32", 0),
    "rank1": ((9,), 0, "int32", 0),
    "int64_indices": ((4, 16), 1, "int64", 3),
    "int64_axis": ((3, 5), 0, "int64", 3),
}


def case(opname: str, name: str) -> Case:
    shape, axis, index, zp = CASES[name]
    m, x, y = arg_model(opname, shape, axis, index=index, axis_dtype="int64" if name == "int64_axis" else "int32",
                        zp=zp)
    rng = np.random.default_rng(len(name))
    ties = [rng.integers(-2, 2, size=shape).astype(np.int8)]  # four values: many ties
    return Case(m, [x], [y], n=6, seed=41, extra=[ties])


TFLM = [n for n in CASES if CASES[n][2] == "int32" and n != "int64_axis"]  # TFLite Micro: int32 only


@pytest.mark.parametrize("name", list(CASES))
def test_arg_max_matches_litert(tmp_path, name):
    check_case(case("ARG_MAX", name), tmp_path, min_distinct=2)


@pytest.mark.parametrize("name", TFLM)
def test_arg_max_matches_tflm(tmp_path, name):
    check_case(case("ARG_MAX", name), tmp_path, goldens=("tflm",), min_distinct=2)


@pytest.mark.parametrize("target", targets("arg_max"))
def test_arg_max_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case("ARG_MAX", name) for name in CASES})


def first_of_ties(tmp_path, opname) -> int:
    m, x, y = arg_model(opname, (1, 6), 1)
    tie = [np.array([[-5, 9, 9, -5, 9, -5]], np.int8)]
    return int(check(m, tmp_path, [x], [y], n=0, extremes=False, extra=[tie], min_distinct=1).reshape(-1)[0])


def test_arg_max_ties_give_the_first_index(tmp_path):
    assert first_of_ties(tmp_path, "ARG_MAX") == 1  # 9 first at index 1


@pytest.mark.parametrize("kw, message", [
    ({"output_type": "int64"}, r"ARG_MAX output_type int64 differs from its output tensor's int32"),
    ({"axis": 3}, r"ARG_MAX axis 3 is outside \[-3, 3\) for a 3-D input"),
    ({"index": "int8"}, None),
])
def test_arg_max_refusals(tmp_path, kw, message):
    shape = (2, 3, 4)
    if kw.get("index") == "int8":
        m = ModelBuilder()
        x = m.tensor("x", shape, "int8", scale=0.05, zero_point=0)
        a = m.tensor("axis", [1], "int32", data=[1])
        y = m.tensor("y", (2, 4), "int8", scale=0.05, zero_point=0)
        m.op("ARG_MAX", [x, a], [y])
        message = r"ARG_MAX output 'y' is int8; TFLite writes int32 or int64 indices"
    else:
        axis = kw.pop("axis", 1)
        m, x, y = arg_model("ARG_MAX", shape, axis if axis < 3 else 0, **kw)
        if axis == 3:
            m.model.buffers[-1].data = list(np.array([3], np.int32).tobytes())  # the axis' constant
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, [x], [y]))


@pytest.mark.parametrize("opname,index", [("ARG_MAX", "int32"), ("ARG_MIN", "int64")])
def test_hls_index_outputs_are_ports_of_the_index_type(tmp_path, opname, index):
    """The indices leave dmx_top as they are (no host edge): an int32_t or int64_t port, so both interfaces'
    ports, buffers and FIFOs carry the index type."""
    from dmxgen.targets import export

    m, x, y = arg_model(opname, (2, 5), 1, index=index)
    for interface in ("array", "stream"):
        out = tmp_path / interface
        manifest = export(save(m, tmp_path, [x], [y]), out, targets=("hls",), hls={"interface": interface})
        top = (out / "hls" / "top.h").read_text()
        port = f"{index}_t out0[DMX_OUT0_SIZE]" if interface == "array" else f"hls::stream<{index}_t> &out0"
        assert port in top and manifest["hls"]["outputs"][0]["host"] is None


def test_c_refuses_indices_that_feed_another_layer(tmp_path):
    """Only the arg kinds pass int32 tensors: a layer on the indices is refused, naming it."""
    from dmxgen.targets import export

    m, x, y = arg_model("ARG_MAX", (2, 5), 1)
    z = m.tensor("z", (1, 2), "int32")
    shape = m.tensor("shape", [2], "int32", data=[1, 2])
    m.op("RESHAPE", [y, shape], [z], newShape=[1, 2])
    with pytest.raises(DmxError, match=r"layer 'reshape_1' \(reshape\): tensor 'z' is int32; "
                                         r"the C backend handles int8 activations"):
        export(save(m, tmp_path, [x], [z]), tmp_path / "out", targets=("c",))
