"""MIRROR_PAD: REFLECT and SYMMETRIC against LiteRT and TFLite Micro, the `edge` mode (torch's
replicate, no TFLite operator) against numpy, all three on the targets, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph, Op, QuantParams, Tensor
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets

VALID_ATTRS = [{"paddings": ((0, 0), (1, 1)), "mirror": "reflect"}, {"paddings": [[0, 0], [2, 0]], "mirror": "edge"}]
MODES = {"reflect": 0, "symmetric": 1}  # tflite.MirrorPadMode


def mirror_pad_model(shape, pads, mode, out_quant=None):
    m = ModelBuilder()
    q = {"scale": 0.05, "zero_point": -5}
    x = m.tensor("x", shape, **q)
    p = m.tensor("paddings", [len(shape), 2], "int32", data=np.array(pads).reshape(len(shape), 2))
    y = m.tensor("y", [d + a + b for d, (a, b) in zip(shape, pads)], **(out_quant or q))
    m.op("MIRROR_PAD", [x, p], [y], mode=MODES[mode])
    return m, x, y


CASES = {
    "hw_1": ((1, 4, 5, 3), [[0, 0], [1, 1], [1, 1], [0, 0]]),
    "hw_asymmetric": ((1, 5, 4, 3), [[0, 0], [0, 2], [3, 1], [0, 0]]),
    "hw_widest": ((1, 3, 4, 2), [[0, 0], [2, 2], [3, 3], [0, 0]]),  # reflect's limit: size - 1
    "channels": ((1, 3, 3, 4), [[0, 0], [0, 0], [0, 0], [1, 3]]),
    "every_axis": ((2, 3, 4, 5), [[1, 1], [2, 0], [1, 2], [2, 1]]),
    "rank3": ((2, 6, 4), [[0, 0], [2, 3], [1, 0]]),  # a Conv1d's [N, L, C] as torch pads it
    "rank2": ((4, 5), [[3, 1], [0, 4]]),
    "no_padding": ((1, 3, 3, 2), [[0, 0]] * 4),
}


def case(name: str, mode: str) -> Case:
    shape, pads = CASES[name]
    m, x, y = mirror_pad_model(shape, pads, mode)
    return Case(m, [x], [y], n=3, seed=21)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(CASES))
def test_mirror_pad(tmp_path, name, mode, golden):
    check_case(case(name, mode), tmp_path, goldens=(golden,))


def edge_graph(name: str) -> Graph:
    shape, pads = CASES[name]
    pads = [(a + 2, b + 3) if i in (1, 2) and len(shape) == 4 else (a, b) for i, (a, b) in enumerate(pads)]
    q = QuantParams(np.array([0.05], np.float32), np.array([-5]))
    g = Graph(source="mirror_pad edge test")
    g.add_tensor(Tensor("x", tuple(shape), "int8", q))
    g.add_tensor(Tensor("y", tuple(d + a + b for d, (a, b) in zip(shape, pads)), "int8", q))
    g.ops.append(Op("pad", "mirror_pad", ["x"], ["y"], {"paddings": tuple(map(tuple, pads)), "mirror": "edge"}))
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    return g


@pytest.mark.parametrize("name", list(CASES))
def test_edge_mode_repeats_the_edge_element(name):
    g = edge_graph(name)  # wider than the tensor along H and W: edge has no size limit
    x = np.random.default_rng(2).integers(-128, 128, size=g.tensors["x"].shape).astype(np.int8)
    got = reference.run(g, [x])["y"]
    pads = g.ops[0].a.paddings
    idx = np.ix_(*[np.clip(np.arange(-b, d + a), 0, d - 1) for d, (b, a) in zip(x.shape, pads)])
    assert np.array_equal(got, x[idx])  # every output element is the input's nearest one


@pytest.mark.parametrize("target", targets("mirror_pad"))
def test_mirror_pad_on_targets(tmp_path, target):
    cases = {f"{name}_{mode}": case(name, mode) for name in CASES for mode in MODES}
    cases |= {f"{name}_edge": Case(edge_graph(name), [], [], n=3, seed=22) for name in CASES}
    check_targets(tmp_path, target, cases)


@pytest.mark.parametrize("shape, pads, mode, out_quant, message", [
    ((1, 3, 4, 2), [[0, 0], [3, 0], [0, 0], [0, 0]], "reflect", None,
     r"reflect padding \(3, 0\) of dim 1 \(size 3\) must lie in \[0, 2\]"),
    ((1, 3, 4, 2), [[0, 0], [0, 0], [0, 5], [0, 0]], "symmetric", None,
     r"symmetric padding \(0, 5\) of dim 2 \(size 4\) must lie in \[0, 4\]"),
    ((1, 3, 4, 2), [[0, 0], [1, 1], [1, 1], [0, 0]], "reflect", {"scale": 0.1, "zero_point": -5},
     r"MIRROR_PAD with different input and output quantization is not supported"),
])
def test_mirror_pad_refusals(tmp_path, shape, pads, mode, out_quant, message):
    m, x, y = mirror_pad_model(shape, pads, mode, out_quant)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, [x], [y]))
