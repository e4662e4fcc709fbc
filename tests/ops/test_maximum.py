"""MAXIMUM: broadcasting (constant scalar on either side, channel vectors, both ways, rank 5), extreme
grids, the refusal of inputs and output on different grids, and torch.maximum from PyTorch.
tests/ops/test_minimum.py runs the same cases on MINIMUM."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets
from ._torch import assert_codes_agree, calibrated

VALID_ATTRS = [{}]


def select_model(opname, shape_a, shape_b, *, s=0.05, zp=-3, grids=None, const=None, seed=0):
    """opname(a, b) -> the broadcast output, all three on grid (s, zp) unless `grids` gives each its own;
    `const` "a" or "b" makes that operand a constant."""
    rng = np.random.default_rng(seed)
    grids = grids or [(s, zp)] * 3
    m = ModelBuilder()

    def operand(name, shape, k):
        data = rng.integers(-128, 128, size=shape).astype(np.int8) if const == name else None
        return m.tensor(name, shape, scale=grids[k][0], zero_point=grids[k][1], data=data)

    a, b = operand("a", shape_a, 0), operand("b", shape_b, 1)
    out_shape = list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
    y = m.tensor("y", out_shape, scale=grids[2][0], zero_point=grids[2][1])
    m.op(opname, [a, b], [y])
    return m, [t for t, name in ((a, "a"), (b, "b")) if name != const], y


CASES = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
    "broadcast_first_operand": ((1, 1, 1, 3), (1, 4, 4, 3), {}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
    "broadcast_rank_differs": ((1, 4, 4, 3), (3,), {}),
    "rank5": ((2, 3, 1, 4, 5), (2, 1, 1, 4, 5), {}),
    "const_scalar": ((1, 4, 4, 3), (), {"const": "b"}),  # max(x, c): a clamp at c
    "const_scalar_first": ((), (1, 4, 4, 3), {"const": "a"}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const": "b"}),
    "zp_m128": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": -128}),
    "zp_127": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": 127, "s": 1e-5}),
    "scale_huge": ((1, 3, 3, 4), (4,), {"zp": 0, "s": 1000.0}),
}


def case(name: str, opname: str = "MAXIMUM") -> Case:
    shape_a, shape_b, kw = CASES[name]
    m, ins, y = select_model(opname, shape_a, shape_b, seed=len(name), **kw)
    return Case(m, ins, [y], n=6, seed=7)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_maximum(tmp_path, name, golden):
    out = check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)
    shape_a, shape_b, _ = CASES[name]
    assert out.shape[1:] == np.broadcast_shapes(shape_a, shape_b)


@pytest.mark.parametrize("target", targets("maximum"))
def test_maximum_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


GRIDS = {
    "input scale": [(0.05, 1), (0.06, 1), (0.05, 1)],
    "input zero point": [(0.05, 1), (0.05, 2), (0.05, 1)],
    "output grid": [(0.05, 1), (0.05, 1), (0.1, 1)],
}


@pytest.mark.parametrize("what", list(GRIDS))
@pytest.mark.parametrize("opname", ["MAXIMUM", "MINIMUM"])
def test_select_refuses_two_grids(tmp_path, opname, what):
    m, ins, y = select_model(opname, (1, 4), (1, 4), grids=GRIDS[what])
    g = GRIDS[what]
    want = (rf"{opname} needs its inputs and output on one quantization grid, got "
            rf"scale={g[0][0]:g} zp={g[0][1]}, scale={g[1][0]:g} zp={g[1][1]} -> scale={g[2][0]:g} zp={g[2][1]}$")
    with pytest.raises(DmxError, match=want):
        load_tflite(save(m, tmp_path, ins, [y]))


def test_maximum_spec_refuses_two_grids_in_a_graph(tmp_path):
    """A graph written by hand (not by the frontends) is held to the same rule by Graph.validate."""
    m, ins, y = select_model("MAXIMUM", (1, 4), (1, 4))
    g = load_tflite(save(m, tmp_path, ins, [y]))
    out = g.tensors[g.ops[0].outputs[0]]
    out.quant = type(out.quant)(np.array([0.1], np.float32), np.array([-3], np.int64))
    with pytest.raises(DmxError, match=r"inputs and output must share one per-tensor quantization grid"):
        g.validate()


# -- the PyTorch frontend: torch.maximum / torch.minimum of two activations ---------------------------------
class TwoBranches(torch.nn.Module):
    """max (or min) of two convs, then of that and its max pooling: each input, on a grid of its own,
    is requantized onto the output's."""

    def __init__(self, select=torch.maximum):
        super().__init__()
        self.select = select
        self.a, self.b = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 1)
        self.pool, self.head = torch.nn.MaxPool2d(3, 1, 1), torch.nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        y = self.select(self.a(x), self.b(x))
        y = self.select(y, self.pool(y))
        return self.head(y.flatten(1))


class Broadcast(torch.nn.Module):
    """x.maximum(y) (or minimum) of a [N, 6] and a [N, 1] activation."""

    def __init__(self, select="maximum"):
        super().__init__()
        self.select = select
        self.a, self.b = torch.nn.Linear(5, 6), torch.nn.Linear(5, 1)

    def forward(self, x):
        return getattr(self.a(x), self.select)(self.b(x))


TORCH_CASES = {"two_branches": (TwoBranches, (32, 3, 5, 5)), "broadcast": (Broadcast, (32, 5))}


def torch_model(name: str, select: str = "maximum"):
    net_cls, shape = TORCH_CASES[name]
    return calibrated(lambda: net_cls(getattr(torch, select)) if net_cls is TwoBranches else net_cls(select), shape)


def check_torch_select(name: str, select: str) -> None:
    m, x = torch_model(name, select)
    g = m.to_graph(x[:1])
    kinds = [op.kind for op in g.ops]
    assert kinds.count(select) == (2 if name == "two_branches" else 1)
    if name == "two_branches":  # each conv's grid differs from the output's; min(y, maxpool(y)) is y, whose
        # range (so grid) its output quantizer finds again: no requantize; max(y, maxpool(y)) is not
        assert kinds.count("requantize") == {"maximum": 4, "minimum": 2}[select]
    assert_codes_agree(m, g, x)


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_maximum_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    check_torch_select(name, "maximum")


def test_torch_maximum_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save as save_model

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("two_branches")
    export_and_verify(save_model(m, tmp_path / "two_branches.pt2", x), tmp_path / "c")
