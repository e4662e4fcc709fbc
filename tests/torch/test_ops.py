"""The op kinds the torch frontend uses (lut, concat): reference kernels and shape checks."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.graph import Graph, Op, QuantParams, Tensor


def _q(scale=0.1, zp=3):
    return QuantParams(np.array([scale], np.float32), np.array([zp]))


def test_lut_indexes_code_plus_128_over_the_whole_range():
    g = Graph(source="t")
    g.add_tensor(Tensor("x", (1, 256), "int8", _q()))
    g.add_tensor(Tensor("y", (1, 256), "int8", _q()))
    table = np.arange(127, -129, -1).astype(np.int8)  # y = -1 - x
    g.ops.append(Op("lut", "lut", ["x"], ["y"], {"table": table}))
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    x = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
    assert np.array_equal(reference.run(g, [x])["y"], (-1 - x.astype(int)).astype(np.int8))


def test_concat_along_channels_and_shape_errors():
    g = Graph(source="t")
    for name, c in (("a", 2), ("b", 3), ("y", 5)):
        g.add_tensor(Tensor(name, (1, 2, 2, c), "int8", _q()))
    g.ops.append(Op("cat", "concat", ["a", "b"], ["y"], {"axis": 3}))
    g.inputs, g.outputs = ["a", "b"], ["y"]
    g.validate()
    a = np.arange(8).reshape(1, 2, 2, 2).astype(np.int8)
    b = -np.arange(12).reshape(1, 2, 2, 3).astype(np.int8)
    assert np.array_equal(reference.run(g, [a, b])["y"], np.concatenate([a, b], axis=3))
    g.tensors["b"].quant = _q(0.2)
    with pytest.raises(DmxError, match="different grid"):
        g.validate()
    g.tensors["b"].quant = _q()
    g.ops[0].attrs["axis"] = 2
    with pytest.raises(DmxError, match="do not add up"):
        g.validate()
