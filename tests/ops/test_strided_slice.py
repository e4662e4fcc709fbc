"""STRIDED_SLICE and SLICE: masks, negative indices and strides, shrink, ellipsis, new axes,
offset, rank 1 to 5, against LiteRT / TFLite Micro, numpy's own slicing and every target."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, input_sets, save
from ._targets import check_targets, targets, targets16
from ._torch import assert_codes_agree, calibrated

VALID_ATTRS = [{"begin": (0, 1), "end": (2, 4), "step": (1, 2)},
               {"begin": np.array([3], np.int32), "end": (-1,), "step": (-1,)}]
Q = {"scale": 0.05, "zero_point": -7}
IDX = np.index_exp  # the numpy slicing each case must equal (the oracle for shapes and values)

# name -> (input shape, begin, end, strides, options, the same slice written in numpy)
CASES = {
    "r1_step2": ((10,), [2], [8], [2], {}, IDX[2:8:2]),
    "r1_negative_step": ((10,), [8], [1], [-3], {}, IDX[8:1:-3]),
    "r1_reversed_by_masks": ((7,), [0], [0], [-1], {"beginMask": 1, "endMask": 1}, IDX[::-1]),
    "r2_negative_indices": ((4, 6), [-3, -5], [-1, 6], [1, 2], {}, IDX[-3:-1, -5:6:2]),
    "r3_clamped": ((3, 4, 5), [-10, 1, 0], [10, 100, 5], [1, 1, 2], {}, IDX[-10:10, 1:100, 0:5:2]),
    "r3_negative_clamped": ((3, 4, 5), [10, 0, 7], [-10, 4, -100], [-1, 1, -2], {}, IDX[10:-10:-1, 0:4, 7:-100:-2]),
    "r4_shrink": ((2, 3, 4, 5), [0, 1, 0, 0], [0, 2, 0, 0], [1, 1, 1, 1],
                  {"beginMask": 0b1101, "endMask": 0b1101, "shrinkAxisMask": 0b0010}, IDX[:, 1, :, :]),
    "r4_shrink_negative_index": ((2, 3, 4, 5), [0, 0, 0, -1], [0, 0, 0, 0], [1, 1, 1, 1],
                                 {"beginMask": 0b0111, "endMask": 0b0111, "shrinkAxisMask": 0b1000}, IDX[:, :, :, -1]),
    "r4_channels": ((1, 4, 4, 8), [0, 0, 0, 2], [1, 4, 4, 6], [1, 1, 1, 1], {}, IDX[..., 2:6]),
    "r4_negative_end_mask": ((2, 5, 6, 3), [0, 3, -1, 0], [2, 0, 0, 3], [1, -1, -2, 1], {"endMask": 0b0100},
                             IDX[:, 3:0:-1, -1::-2, :]),
    "r5": ((2, 3, 2, 4, 3), [1, 0, 0, 3, 0], [2, 3, 2, 0, 3], [1, 2, 1, -2, 1], {},
           IDX[1:2, 0:3:2, 0:2, 3:0:-2, 0:3]),
    "ellipsis": ((2, 3, 4, 5), [0, 1], [0, 4], [1, 2], {"ellipsisMask": 0b01}, IDX[..., 1:4:2]),
    "ellipsis_shrink": ((2, 3, 4), [0, 2], [0, 3], [1, 1], {"ellipsisMask": 0b01, "shrinkAxisMask": 0b10},
                        IDX[..., 2]),
    "new_axis": ((3, 4), [0, 0, 1], [0, 0, 3], [1, 1, 1],
                 {"newAxisMask": 0b010, "beginMask": 0b001, "endMask": 0b001}, IDX[:, None, 1:3]),
    "offset": ((6, 8), [1, 2], [3, 4], [1, 1], {"offset": True}, IDX[1:4, 2:6]),
}
TFLM = ["r1_step2", "r2_negative_indices", "r3_clamped", "r4_shrink", "r4_channels"]


def numpy_slice(shape, index) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape)[index]


def slice_model(shape, begin, end, strides, out_shape, out_quant=None, **options):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    consts = [m.tensor(n, [len(v)], "int32", data=list(v)) for n, v in
              (("begin", begin), ("end", end), ("strides", strides))]
    y = m.tensor("y", out_shape, "int8", **(out_quant or Q))
    m.op("STRIDED_SLICE", [x, *consts], [y], **options)
    return m, x, y


def case(name: str) -> Case:
    shape, begin, end, strides, opts, index = CASES[name]
    m, x, y = slice_model(shape, begin, end, strides, numpy_slice(shape, index).shape, **opts)
    return Case(m, [x], [y], n=2, seed=41)


@pytest.mark.parametrize("name", list(CASES))
def test_strided_slice_matches_tflite_and_numpy(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflite",))
    shape, *_, index = CASES[name]
    c = case(name)
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "again"))
    for (x,) in input_sets(graph, 2, 5, extremes=False):
        got = reference.run(graph, [x])[graph.outputs[0]]
        assert np.array_equal(got, x[index]), name


@pytest.mark.parametrize("name", TFLM)
def test_strided_slice_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("strided_slice"))
def test_strided_slice_on_targets(tmp_path, target):
    cases = {name: case(name) for name in CASES} | {name: slice_case(name) for name in SLICES}
    check_targets(tmp_path, target, cases, tflm=TFLM[:2])


@pytest.mark.parametrize("shape, begin, end, strides, opts, out_shape, message", [
    ((4, 5), [0, 0], [4, 5], [1, 0], {}, (4, 5), r"stride of dim 1 is 0"),
    ((4, 5), [0, 7], [4, 8], [1, 1], {"shrinkAxisMask": 0b10}, (4,),
     r"shrink_axis_mask: begin 7 is outside dim 1 of size 5"),
    ((4, 5), [0, 0], [4, 5], [1, 1], {"ellipsisMask": 0b11}, (4, 5), r"ellipsis_mask 3 sets more than one bit"),
    ((2, 2, 2, 2, 2), [0, 0, 0], [1, 1, 1], [1, 1, 1], {"newAxisMask": 0b001, "ellipsisMask": 0b100},
     (1, 1, 2, 2, 2, 2), r"new_axis_mask: 6 dims after the new axes; TFLite slices at most 5"),
    ((4, 5), [0, 0], [4, 5], [1, 1], {}, (4, 4), r"output shape \[4, 4\] differs from the computed \[4, 5\]"),
])
def test_strided_slice_refusals_name_the_option(tmp_path, shape, begin, end, strides, opts, out_shape, message):
    m, x, y = slice_model(shape, begin, end, strides, out_shape, **opts)
    with pytest.raises(DmxError, match=r"operator 0 \(STRIDED_SLICE, output 'y'\): " + message):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_strided_slice_refuses_a_change_of_grid(tmp_path):
    m, x, y = slice_model((4, 5), [0, 1], [4, 3], [1, 1], (4, 2), out_quant={"scale": 0.1, "zero_point": -7})
    with pytest.raises(DmxError, match=r"STRIDED_SLICE changes the quantization .*its kernel copies codes"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_strided_slice_refuses_begin_that_is_not_constant(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", (4,), "int8", **Q)
    b = m.tensor("begin", [1], "int32")
    e, s = m.tensor("end", [1], "int32", data=[3]), m.tensor("strides", [1], "int32", data=[1])
    y = m.tensor("y", (3,), "int8", **Q)
    m.op("STRIDED_SLICE", [x, b, e, s], [y])
    with pytest.raises(DmxError, match=r"begin 'begin' must be a constant int32 or int64 tensor"):
        load_tflite(save(m, tmp_path, [x, b], [y]))


# -- SLICE: begin and size, -1 to the end -------------------------------------------------------
SLICES = {
    "slice_r2": ((5, 7), [1, 2], [3, -1], IDX[1:4, 2:]),
    "slice_r4": ((1, 4, 5, 6), [0, 1, 0, 2], [1, 2, -1, 3], IDX[:, 1:3, :, 2:5]),
    "slice_r1_all": ((9,), [0], [-1], IDX[:]),
}


def slice_model_v1(shape, begin, size, out_shape, dtype="int32"):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    b, s = m.tensor("begin", [len(begin)], dtype, data=begin), m.tensor("size", [len(size)], dtype, data=size)
    y = m.tensor("y", out_shape, "int8", **Q)
    m.op("SLICE", [x, b, s], [y])
    return m, x, y


def slice_case(name: str) -> Case:
    shape, begin, size, index = SLICES[name]
    m, x, y = slice_model_v1(shape, begin, size, numpy_slice(shape, index).shape)
    return Case(m, [x], [y], n=2, seed=43)


@pytest.mark.parametrize("name", list(SLICES))
def test_slice_matches_tflite_and_tflm(tmp_path, name):
    check_case(slice_case(name), tmp_path, goldens=("tflite", "tflm"))


def test_slice_takes_int64_indices(tmp_path):
    m, x, y = slice_model_v1((5, 7), [1, 2], [3, -1], (3, 5), dtype="int64")
    g = load_tflite(save(m, tmp_path, [x], [y]))
    assert (g.ops[0].kind, g.ops[0].a.begin, g.ops[0].a.end) == ("strided_slice", (1, 2), (4, 7))


@pytest.mark.parametrize("begin, size, message", [
    ([1, 6], [3, 2], r"begin 6 and size 2 of dim 1 leave its 7 elements"),
    ([-1, 0], [1, 7], r"begin -1 and size 1 of dim 0 leave its 5 elements"),
    ([0, 0], [5, -2], r"begin 0 and size -2 of dim 1 leave its 7 elements"),
])
def test_slice_refusals(tmp_path, begin, size, message):
    m, x, y = slice_model_v1((5, 7), begin, size, (3, 2))
    with pytest.raises(DmxError, match=r"\(SLICE, output 'y'\): " + message):
        load_tflite(save(m, tmp_path, [x], [y]))


# -- the PyTorch frontend: slices, narrow, chunk and split on activations ---------------------------
class ChannelSlice(torch.nn.Module):
    """A slice of an NCHW tensor's channels (the graph's last dim) and a strided slice of its width."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = torch.relu(self.a(x))[:, 2:6]
        return self.b(y[..., 1::2])


class ChunkBranches(torch.nn.Module):
    """chunk into two branches, each its own conv, added back."""

    def __init__(self):
        super().__init__()
        self.stem, self.p, self.q = torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 1)

    def forward(self, x):
        a, b = self.stem(x).chunk(2, dim=1)
        return self.p(torch.relu(a)) + self.q(b)


class NarrowTime(torch.nn.Module):
    """narrow over the time dim of an NCL tensor between two Conv1d."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv1d(2, 6, 3), torch.nn.Conv1d(6, 3, 1)

    def forward(self, x):  # [N, 2, 12]
        y = torch.relu(self.a(x))  # [N, 6, 10]
        return self.b(torch.narrow(y, 2, 2, 5) + y.narrow(-1, -5, 5))


class SplitPlain(torch.nn.Module):
    """split by sizes and by an int on plain tensors, a strided slice, and unsqueeze / squeeze."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 8), torch.nn.Linear(7, 3)

    def forward(self, x):  # [N, 6]
        y = torch.relu(self.a(x))
        head, tail = torch.split(y, [3, 5], dim=1)
        parts = tail.split(2, dim=-1)  # 2, 2, 1
        z = torch.cat([parts[2], head, y.unsqueeze(1)[..., ::3].squeeze(1)], dim=1)  # 1 + 3 + 3
        return self.b(z)


TORCH_CASES = {"channel_slice": (ChannelSlice, (32, 3, 6, 6)), "chunk_branches": (ChunkBranches, (32, 3, 5, 5)),
               "narrow_time": (NarrowTime, (32, 2, 12)), "split_plain": (SplitPlain, (32, 6))}


def torch_model(name: str):
    return calibrated(*TORCH_CASES[name])


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_slices_from_torch_are_bit_exact_with_the_fake_quantized_model(name):
    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    kinds = [op.kind for op in g.ops]
    assert "strided_slice" in kinds and "transpose" not in kinds  # a slice is no layout change
    assert_codes_agree(m, g, x)


def test_a_channel_slice_of_nchw_is_a_slice_of_the_graphs_last_dim():
    m, x = torch_model("channel_slice")
    g = m.to_graph(x[:1])
    first, second = [op for op in g.ops if op.kind == "strided_slice"]
    assert (first.a.begin, first.a.end, first.a.step) == ((0, 0, 0, 2), (1, 6, 6, 6), (1, 1, 1, 1))
    assert (second.a.begin, second.a.end, second.a.step) == ((0, 0, 1, 0), (1, 6, 6, 4), (1, 1, 2, 1))


def test_chunk_pieces_are_consecutive_channel_ranges():
    m, x = torch_model("chunk_branches")
    g = m.to_graph(x[:1])
    assert [(op.a.begin[3], op.a.end[3]) for op in g.ops if op.kind == "strided_slice"] == [(0, 4), (4, 8)]


@pytest.mark.parametrize("body, message", [
    (lambda x: x[:, 0], r"indexing with an integer \(it drops the dim; slice it, x\[:, i:i \+ 1\]\) is not supported"),
    (lambda x: x[:, None], r"indexing with None \(a new axis\) is not supported"),
])
def test_torch_indexing_it_cannot_export_is_refused_at_transform(body, message):
    import dmxgen

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return body(self.fc(x))

    with pytest.raises(DmxError, match=message):
        dmxgen.Model(Net().eval()).transform(None)


def test_slicing_the_batch_dim_is_refused_on_the_first_batch():
    import dmxgen

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).narrow(0, 0, 1)

    m = dmxgen.Model(Net().eval()).transform(None)
    with pytest.raises(DmxError, match=r"layer 'narrow': slicing the batch dim is not supported"):
        with m.calibrating():  # the first batch's export check
            m(torch.randn(8, 4))


def test_torch_slices_export_and_verify_on_the_host(tmp_path):
    from dmxgen.api import save as save_pt2

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("chunk_branches")
    export_and_verify(save_pt2(m, tmp_path / "chunk.pt2", x), tmp_path / "c")


# -- int16 codes (TFLite's 16x8 scheme: the same model with int16 activations, zero point 0) -------------
INT16 = ["r1_negative_step", "r2_negative_indices", "r3_negative_clamped"]


def case16(name: str) -> Case:
    shape, begin, end, strides, opts, index = CASES[name]
    m, x, y = slice_model(shape, begin, end, strides, numpy_slice(shape, index).shape, **opts)
    return Case(m.to_int16(), [x], [y], n=2, seed=42)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", INT16)
def test_strided_slice_int16(tmp_path, name, golden):
    assert check_case(case16(name), tmp_path, goldens=(golden,)).dtype == np.int16


@pytest.mark.parametrize("target", targets16("strided_slice"))
def test_strided_slice_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in INT16})
