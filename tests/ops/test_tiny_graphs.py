"""A few ops chained: a residual block (a tensor read twice), global MEAN, FC and softmax."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, bias, check_case, weights
from ._targets import check_targets, targets


def residual_block(seed: int = 0) -> tuple[ModelBuilder, int, int]:
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    x = m.tensor("x", [1, 6, 6, 4], scale=0.05, zero_point=-128)
    sw = rng.uniform(0.002, 0.006, 4).astype(np.float32)
    w = m.tensor("conv/w", [4, 3, 3, 4], scale=sw, zero_point=np.zeros(4), axis=0, data=weights(rng, (4, 3, 3, 4)))
    b = m.tensor("conv/b", [4], "int32", scale=np.float32(0.05) * sw, zero_point=np.zeros(4), data=bias(rng, 4))
    c = m.tensor("conv/out", [1, 6, 6, 4], scale=0.08, zero_point=-10)
    m.op("CONV_2D", [x, w, b], [c], padding="SAME", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
         fusedActivationFunction="RELU")
    s = m.tensor("add/out", [1, 6, 6, 4], scale=0.1, zero_point=-60)
    m.op("ADD", [x, c], [s], fusedActivationFunction="RELU6")  # x is read a second time here
    ax = m.tensor("mean/axes", [2], "int32", data=[1, 2])
    g = m.tensor("mean/out", [1, 4], scale=0.03, zero_point=-128)
    m.op("MEAN", [s, ax], [g], keepDims=False)
    fw = m.tensor("fc/w", [5, 4], scale=0.01, zero_point=0, data=weights(rng, (5, 4)))
    fb = m.tensor("fc/b", [5], "int32", scale=0.0003, zero_point=0, data=bias(rng, 5, 500))
    lo = m.tensor("fc/out", [1, 5], scale=0.05, zero_point=3)
    m.op("FULLY_CONNECTED", [g, fw, fb], [lo])
    p = m.tensor("softmax/out", [1, 5], scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [lo], [p], beta=1.0)
    return m, x, p


def case() -> Case:
    m, x, y = residual_block()
    return Case(m, [x], [y], n=10, seed=18)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_residual_block(tmp_path, golden):
    check_case(case(), tmp_path, goldens=(golden,), per_layer=True)


@pytest.mark.parametrize("target", targets("conv2d", "add", "mean", "fully_connected", "softmax"))
def test_residual_block_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {"residual": case()}, tflm=["residual"])
