"""ARG_MIN: test_arg_max.py's cases (every axis, int32 and int64 indices, ties, zero point ends) for ARG_MIN,
and its refusals."""
from __future__ import annotations

import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import check_case, save
from ._targets import check_targets, targets
from .test_arg_max import CASES, TFLM, arg_model, case, first_of_ties

VALID_ATTRS = [{"axis": 2}]


@pytest.mark.parametrize("name", list(CASES))
def test_arg_min_matches_litert(tmp_path, name):
    check_case(case("ARG_MIN", name), tmp_path, min_distinct=2)


@pytest.mark.parametrize("name", TFLM)
def test_arg_min_matches_tflm(tmp_path, name):
    check_case(case("ARG_MIN", name), tmp_path, goldens=("tflm",), min_distinct=2)


@pytest.mark.parametrize("target", targets("arg_min"))
def test_arg_min_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case("ARG_MIN", name) for name in CASES})


def test_arg_min_ties_give_the_first_index(tmp_path):
    assert first_of_ties(tmp_path, "ARG_MIN") == 0  # -5 first at index 0


def test_arg_min_refuses_float_input_and_int64_under_tflm(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", (2, 3), "float32")
    a = m.tensor("axis", [1], "int32", data=[1])
    y = m.tensor("y", (2,), "int32")
    m.op("ARG_MIN", [x, a], [y], outputType=2)
    with pytest.raises(DmxError, match=r"ARG_MIN of float32 is not supported \(int8 input only\)"):
        load_tflite(save(m, tmp_path, [x], [y]))
    m, x, y = arg_model("ARG_MIN", (2, 3), 1, index="int64")
    with pytest.raises(DmxError, match=r"ARG_MIN with int32 axis and int64 indices: TFLite Micro takes int32 only"):
        load_tflite(save(m, tmp_path, [x], [y], name="int64"), semantics="tflm")
