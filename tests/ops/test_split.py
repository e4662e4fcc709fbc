"""SPLIT and SPLIT_V (one strided_slice op per output), SQUEEZE and EXPAND_DIMS (reshapes):
every output against LiteRT / TFLite Micro and numpy, on the targets, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, input_sets, save
from ._targets import check_targets, targets, targets16

VALID_ATTRS = [{"begin": (0, 0, 2), "end": (1, 4, 6), "step": (1, 1, 1)}]  # a strided_slice piece
Q = {"scale": 0.05, "zero_point": -7}

# name -> (input shape, axis, sizes: an int for SPLIT's num_splits, a list for SPLIT_V's size_splits)
SPLITS = {
    "split_channels": ((1, 3, 4, 6), 3, 3),
    "split_negative_axis": ((2, 6, 5), -2, 2),
    "split_r1": ((8,), 0, 4),
    "split_one": ((3, 4), 1, 1),
    "split_v": ((2, 9, 3), 1, [2, 4, 3]),
    "split_v_inferred": ((1, 4, 4, 7), -1, [3, -1, 1]),
    "split_v_r5": ((2, 1, 3, 2, 5), 4, [1, 4]),
}
TFLM = ["split_channels", "split_v"]


def numpy_pieces(shape, axis, sizes) -> list[np.ndarray]:
    x = np.arange(int(np.prod(shape))).reshape(shape)
    if isinstance(sizes, int):
        return np.split(x, sizes, axis=axis)
    sizes = list(sizes)
    if -1 in sizes:
        sizes[sizes.index(-1)] = shape[axis] - (sum(sizes) + 1)
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def split_model(shape, axis, sizes, out_shapes=None, out_quant=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    a = m.tensor("axis", [1] if isinstance(sizes, int) else [], "int32", data=[axis])
    shapes = out_shapes or [p.shape for p in numpy_pieces(shape, axis, sizes)]
    ys = [m.tensor(f"y{k}", s, "int8", **(out_quant or Q)) for k, s in enumerate(shapes)]
    if isinstance(sizes, int):
        m.op("SPLIT", [a, x], ys, numSplits=sizes)
    else:
        s = m.tensor("sizes", [len(sizes)], "int32", data=sizes)
        m.op("SPLIT_V", [x, s, a], ys, numSplits=len(sizes))
    return m, x, ys


def case(name: str) -> Case:
    m, x, ys = split_model(*SPLITS[name])
    return Case(m, [x], ys, n=2, seed=47)


def check_all_outputs(c: Case, tmp_path, golden: str, want_pieces=None) -> None:
    """Every output of the model (not only the first) equals the golden's, and numpy's split."""
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    graph = load_tflite(path, semantics=golden)
    for k, inputs in enumerate(input_sets(graph, c.n, c.seed)):
        values = reference.run(graph, inputs)
        golds = run_golden(path, inputs, golden, n_outputs=len(graph.outputs))
        assert len(golds) == len(graph.outputs)
        for name, gold in zip(graph.outputs, golds):
            mine = values[name]
            assert mine.dtype == gold.dtype and mine.shape == gold.shape and mine.tobytes() == gold.tobytes(), \
                f"{name} differs from {golden} on input set {k}"
        if want_pieces is not None:
            x = inputs[0]
            for name, piece in zip(graph.outputs, want_pieces):
                assert np.array_equal(values[name], x.reshape(-1)[piece]), name


@pytest.mark.parametrize("name", list(SPLITS))
def test_split_matches_tflite_and_numpy(tmp_path, name):
    check_all_outputs(case(name), tmp_path, "tflite", numpy_pieces(*SPLITS[name]))
    g = load_tflite(save(case(name).m, tmp_path, case(name).inputs, case(name).outputs, "again"))
    assert [op.kind for op in g.ops] == ["strided_slice"] * len(g.outputs)
    assert len({op.name for op in g.ops}) == len(g.ops)


@pytest.mark.parametrize("name", TFLM)
def test_split_matches_tflm(tmp_path, name):
    check_all_outputs(case(name), tmp_path, "tflm")


@pytest.mark.parametrize("target", targets("strided_slice"))
def test_split_on_targets(tmp_path, target):
    cases = {name: case(name) for name in SPLITS}
    if target != "hls":  # a lone reshape is an alias there: the HLS top needs a layer between input and output
        cases |= {name: reshape_case(name) for name in RESHAPES}
    check_targets(tmp_path, target, cases, tflm=TFLM[:1])


@pytest.mark.parametrize("shape, axis, sizes, out_shapes, message", [
    ((4, 6), 1, 4, [(4, 1)] * 4, r"num_splits 4 must equal the 4 outputs and divide the axis' 6 elements"),
    ((4, 6), 2, 2, [(4, 3)] * 2, r"axis \[2\] must be one value in \[-2, 2\)"),
    ((4, 6), 1, [2, 2], [(4, 2)] * 2, r"size_splits \[2, 2\] do not add up to the axis' 6 elements"),
    ((4, 6), 1, [2, -1, -1], [(4, 2)] * 3, r"size_splits \[2, -1, -1\] do not add up"),
    ((4, 6), 1, 2, [(4, 3), (4, 2)], r"output shape \[4, 2\] differs from the computed \[4, 3\]"),
])
def test_split_refusals(tmp_path, shape, axis, sizes, out_shapes, message):
    m, x, ys = split_model(shape, axis, sizes, out_shapes)
    with pytest.raises(DmxError, match=r"\((SPLIT|SPLIT_V), output 'y0'\): " + message):
        load_tflite(save(m, tmp_path, [x], ys))


def test_split_refuses_a_change_of_grid(tmp_path):
    m, x, ys = split_model((4, 6), 1, 2, out_quant={"scale": 0.05, "zero_point": 3})
    with pytest.raises(DmxError, match=r"SPLIT changes the quantization \(.*\); its kernel copies codes"):
        load_tflite(save(m, tmp_path, [x], ys))


# -- SQUEEZE and EXPAND_DIMS: reshapes --------------------------------------------------------------
RESHAPES = {
    "squeeze_all": ("SQUEEZE", (1, 3, 1, 4), [], (3, 4)),
    "squeeze_dims": ("SQUEEZE", (1, 3, 1, 4), [-2], (1, 3, 4)),
    "expand_front": ("EXPAND_DIMS", (3, 4), 0, (1, 3, 4)),
    "expand_negative": ("EXPAND_DIMS", (3, 4), -1, (3, 4, 1)),
}


def reshape_model(opname, shape, arg, out_shape, out_quant=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    y = m.tensor("y", out_shape, "int8", **(out_quant or Q))
    if opname == "SQUEEZE":
        m.op("SQUEEZE", [x], [y], squeezeDims=list(arg))
    else:
        m.op("EXPAND_DIMS", [x, m.tensor("axis", [], "int32", data=[arg])], [y])
    return m, x, y


def reshape_case(name: str) -> Case:
    m, x, y = reshape_model(*RESHAPES[name])
    return Case(m, [x], [y], n=2, seed=53)


@pytest.mark.parametrize("name", list(RESHAPES))
def test_squeeze_and_expand_dims_match_tflite_and_tflm(tmp_path, name):
    for golden in ("tflite", "tflm"):
        check_all_outputs(reshape_case(name), tmp_path, golden)
    c = reshape_case(name)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "again"))
    assert [op.kind for op in g.ops] == ["reshape"] and g.tensors["y"].shape == RESHAPES[name][3]


@pytest.mark.parametrize("opname, shape, arg, out_shape, message", [
    ("SQUEEZE", (1, 3, 1, 4), [1], (1, 1, 4), r"squeeze_dims \[1\]: dim 1 is not a dim of size 1 of \[1, 3, 1, 4\]"),
    ("SQUEEZE", (1, 3, 1, 4), [], (1, 3, 4), r"output shape \[1, 3, 4\] differs from the computed \[3, 4\]"),
    ("EXPAND_DIMS", (3, 4), 3, (3, 4, 1), r"axis \[3\] must be one value in \[-3, 2\]"),
])
def test_squeeze_and_expand_dims_refusals(tmp_path, opname, shape, arg, out_shape, message):
    m, x, y = reshape_model(opname, shape, arg, out_shape)
    with pytest.raises(DmxError, match=rf"\({opname}, output 'y'\): " + message):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_squeeze_refuses_a_change_of_grid(tmp_path):
    m, x, y = reshape_model("SQUEEZE", (1, 3, 1, 4), [], (3, 4), out_quant={"scale": 0.5, "zero_point": -7})
    with pytest.raises(DmxError, match=r"SQUEEZE changes the quantization"):
        load_tflite(save(m, tmp_path, [x], [y]))


# -- int16 codes (TFLite's 16x8 scheme: the same model with int16 activations, zero point 0) -------------
def case16(name: str) -> Case:
    m, x, ys = split_model(*SPLITS[name])
    return Case(m.to_int16(), [x], ys, n=2, seed=48)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(SPLITS))
def test_split_int16(tmp_path, name, golden):
    check_all_outputs(case16(name), tmp_path, golden)


@pytest.mark.parametrize("target", targets16("strided_slice"))
def test_split_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in SPLITS})
