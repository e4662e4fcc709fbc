"""TRANSPOSE: every permutation of rank 2 to 4, a rank-5 channel shuffle, and the refusals."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import loops
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16

VALID_ATTRS = [{"perm": (0, 2, 1)}, {"perm": np.array([1, 0], np.int32)}]


def transpose_model(shape, perm, out_quant=None, perm_dtype="int32"):
    m = ModelBuilder()
    q = {"scale": 0.05, "zero_point": -7}
    x = m.tensor("x", shape, "int8", **q)
    p = m.tensor("perm", [len(perm)], perm_dtype, data=list(perm))
    y = m.tensor("y", [shape[i] for i in perm], "int8", **(out_quant or q))
    m.op("TRANSPOSE", [x, p], [y])
    return m, x, y


SHAPES = {2: (3, 5), 3: (2, 3, 5), 4: (2, 3, 4, 5)}
CASES = {f"r{len(p)}_{''.join(map(str, p))}": (SHAPES[len(p)], p)
         for rank in (2, 3, 4) for p in itertools.permutations(range(rank))}
CASES["nhwc_to_nchw"] = ((1, 6, 7, 8), (0, 3, 1, 2))  # a converted PyTorch model's first op
CASES["unit_dims"] = ((1, 1, 9, 1), (3, 2, 0, 1))
CASES["shuffle_r5"] = ((1, 4, 3, 2, 6), (0, 1, 2, 4, 3))  # channel shuffle: [N, H, W, g, C/g] -> [.., C/g, g]
FOUR_D = {name for name, (shape, _) in CASES.items() if len(shape) <= 4}


def case(name: str) -> Case:
    shape, perm = CASES[name]
    m, x, y = transpose_model(shape, perm)
    return Case(m, [x], [y], n=2, seed=31)


@pytest.mark.parametrize("name", list(CASES))
def test_transpose_matches_tflite(tmp_path, name):
    out = check_case(case(name), tmp_path, goldens=("tflite",))
    shape, perm = CASES[name]
    assert out.shape[1:] == tuple(shape[p] for p in perm)


@pytest.mark.parametrize("name", ["r3_210", "r4_3120", "nhwc_to_nchw", "unit_dims"])
def test_transpose_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


def test_transpose_walks_merge_to_the_kernels_four_loops():
    # The rank-5 shuffle keeps N*H*W as one loop: three loops remain, the kernels have four.
    walk = loops.transpose((1, 4, 3, 2, 6), (0, 1, 2, 4, 3)).collapse("shuffle")
    assert walk.n == (1, 12, 6, 2)
    # Five dims that no neighbours share cannot merge: the backends refuse them by name.
    with pytest.raises(DmxError, match=r"shuffle5: needs 5 loop dimensions"):
        loops.transpose((2, 3, 4, 5, 6), (4, 3, 2, 1, 0)).collapse("shuffle5")


@pytest.mark.parametrize("target", targets("transpose"))
def test_transpose_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=sorted(FOUR_D & {"r3_210"}))


@pytest.mark.parametrize("perm, out_quant, message", [
    ((0, 0, 2), None, r"perm \[0, 0, 2\] is not a permutation of the input's 3 dims"),
    ((0, 2, 1), {"scale": 0.1, "zero_point": -7}, r"TRANSPOSE changes the quantization"),
])
def test_transpose_refusals_name_the_layer(tmp_path, perm, out_quant, message):
    m, x, y = transpose_model((2, 3, 4), perm, out_quant)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_transpose_takes_negative_dims_as_tflite_does(tmp_path):
    m, x, y = transpose_model((2, 3, 4), (0, 2, 1))
    m2, x2, y2 = transpose_model((2, 3, 4), (0, -1, 1))
    a = load_tflite(save(m, tmp_path, [x], [y], "a"))
    b = load_tflite(save(m2, tmp_path, [x2], [y2], "b"))
    assert a.ops[0].a.perm == b.ops[0].a.perm == (0, 2, 1)


# -- the PyTorch frontend: permute, transpose and the layout changes around them -------------------
class TokenMixer(torch.nn.Module):
    """ResMLP's token mixing: a Linear over the token dim between two transposes, then channel mixing."""

    def __init__(self, tokens=5, dim=6):
        super().__init__()
        self.tokens, self.channels = torch.nn.Linear(tokens, tokens), torch.nn.Linear(dim, dim)

    def forward(self, x):  # [N, T, D]
        x = x + self.tokens(x.transpose(1, 2)).transpose(1, 2)
        return self.channels(x)


class ChannelShuffle(torch.nn.Module):
    """ShuffleNet's channel shuffle between two convs (view, transpose, view), and a flatten of NHWC."""

    def __init__(self, groups=2):
        super().__init__()
        self.groups = groups
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = torch.relu(self.a(x))
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.b(x).permute(0, 2, 3, 1).flatten(1)  # NHWC: the graph already holds it so, no copy


class NhwcInput(torch.nn.Module):
    """A model fed NHWC that permutes to NCHW itself, and a swapaxes of two activations' dims."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = torch.nn.Conv2d(4, 6, 3), torch.nn.Linear(6, 2)

    def forward(self, x):  # [N, H, W, C]
        y = self.conv(torch.permute(x, (0, 3, 1, 2)))  # [N, 6, 3, 3]
        return self.head(torch.swapaxes(y, 1, 3))  # [N, W, H, C]: a Linear over the channels


class NhwcOutput(torch.nn.Module):
    """A 4-D output left in NHWC: handed over as 4-D outputs are (NCHW in torch, NHWC codes)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).permute(0, 2, 3, 1)


TORCH_CASES = {"token_mixer": (TokenMixer, (32, 5, 6)), "channel_shuffle": (ChannelShuffle, (32, 3, 6, 5)),
               "nhwc_input": (NhwcInput, (32, 5, 5, 4)), "nhwc_output": (NhwcOutput, (32, 3, 4, 5))}


def torch_model(name: str):
    import dmxgen

    net_cls, shape = TORCH_CASES[name]
    torch.manual_seed(0)
    x = torch.randn(*shape)
    m = dmxgen.Model(net_cls().eval()).transform(None)
    with m.calibrating():
        m(x)
    return m.eval(), x


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_transpose_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    from dmxgen.api import reference_outputs

    m, x = torch_model(name)
    g = m.to_graph(x[:1])
    assert "transpose" in [op.kind for op in g.ops]
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"


def test_a_permute_the_graph_already_holds_is_no_copy():
    m, x = torch_model("channel_shuffle")
    g = m.to_graph(x[:1])
    # to torch's order for the 5-D view, the shuffle itself, back to NHWC for conv b; the final
    # permute(0, 2, 3, 1) is the graph's own layout: no fourth transpose
    assert [op.a.perm for op in g.ops if op.kind == "transpose"] == [(0, 3, 1, 2), (0, 2, 1, 3, 4), (0, 2, 3, 1)]


def test_torch_transpose_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("token_mixer")
    export_and_verify(save(m, tmp_path / "mixer.pt2", x), tmp_path / "c", "--format", "dcsr")


# -- int16 codes (TFLite's 16x8 scheme: the same model with int16 activations, zero point 0) -------------
INT16 = ["r3_210", "r4_3120", "r4_0312", "nhwc_to_nchw", "unit_dims", "shuffle_r5"]


def case16(name: str) -> Case:
    shape, perm = CASES[name]
    m, x, y = transpose_model(shape, perm)
    return Case(m.to_int16(), [x], [y], n=2, seed=32)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", INT16)
def test_transpose_int16(tmp_path, name, golden):
    if golden == "tflm" and name not in FOUR_D:
        pytest.skip("TFLite Micro's TRANSPOSE takes at most 5 dims here as for int8 (FOUR_D)")
    assert check_case(case16(name), tmp_path, goldens=(golden,)).dtype == np.int16


@pytest.mark.parametrize("target", targets16("transpose"))
def test_transpose_int16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case16(name) for name in INT16})
