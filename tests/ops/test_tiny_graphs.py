"""A few ops chained: a residual block (a tensor read twice), global MEAN, FC and softmax."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import bias, check, weights


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


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_residual_block(tmp_path, golden):
    m, x, y = residual_block()
    check(m, tmp_path, [x], [y], goldens=(golden,), n=10, seed=18, per_layer=True)
