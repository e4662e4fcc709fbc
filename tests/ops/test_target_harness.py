"""The per-target runs of _targets.py: they follow the specs' targets and notice a one-LSB error."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.ops import SPECS

from ._targets import build_zoo, check_targets, targets
from .test_add import case


def _ids(params) -> list[str]:
    return [p.id for p in params]


def test_the_targets_are_the_declared_ones(monkeypatch):
    assert _ids(targets("add")) == ["c", "hls", "m55"]
    assert _ids(targets("dequantize")) == ["c", "m55"]  # targets = ("c", "tflite")
    assert _ids(targets("mean_float")) == []  # the reference and LiteRT only
    monkeypatch.setattr(type(SPECS["add"]), "targets", ("c",))  # a kind that claims host C only
    assert _ids(targets("add")) == ["c", "m55"]


def test_a_case_joins_a_target_only_if_its_ops_declare_it(tmp_path, monkeypatch):
    monkeypatch.setattr(type(SPECS["add"]), "targets", ("c",))
    with pytest.raises(AssertionError, match="no case declares target 'hls'"):
        build_zoo(tmp_path, {"same_shape": case("same_shape")}, "hls")
    zoo = build_zoo(tmp_path, {"same_shape": case("same_shape"), "relu": case("relu")}, "c", tflm=["relu"])
    assert zoo.owners == ["same_shape", "relu", "relu_tflm"]
    assert len(zoo.inputs) == 6 + 4  # n=6 random sets, then the 4 corners of a binary op


@pytest.mark.parametrize("target", targets("add"))
def test_a_reference_off_by_one_fails_the_target(tmp_path, monkeypatch, target):
    """The expected values come from the reference: one value off in it must fail each target."""
    original = reference.KERNELS["add"]

    def off_by_one(op, args, out_t):
        y = np.asarray(original(op, args, out_t)).astype(np.int16)
        y.reshape(-1)[3] += 1 if y.reshape(-1)[3] < 127 else -1
        return y.astype(np.int8)

    monkeypatch.setitem(reference.KERNELS, "add", off_by_one)
    expect = {"c": r"host C differs from the reference: same_shape: 10 of 480 values differ",
              "hls": "FAIL", "m55": "M55 mve"}[target]
    with pytest.raises(AssertionError, match=expect):
        check_targets(tmp_path, target, {"same_shape": case("same_shape")})
