"""ADD: broadcasting (constant scalar, per-channel constant, [1,h,w,c]+[1,1,1,c]), scales, activations, saturation."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case
from ._targets import check_targets, targets


def binary_model(opname, shape_a, shape_b, *, s=(0.05, 0.05, 0.1), zp=(-3, 7, -1), act="NONE",
                 const_b=False, seed=0):
    """a (input) op b (input, or a constant when const_b) -> broadcast output."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    a = m.tensor("a", shape_a, scale=s[0], zero_point=zp[0])
    data = rng.integers(-128, 128, size=shape_b).astype(np.int8) if const_b else None
    b = m.tensor("b", shape_b, scale=s[1], zero_point=zp[1], data=data)
    y = m.tensor("y", list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b))), scale=s[2], zero_point=zp[2])
    m.op(opname, [a, b], [y], fusedActivationFunction=act)
    return m, ([a] if const_b else [a, b]), y


CASES = {
    "same_shape": ((1, 4, 4, 3), (1, 4, 4, 3), {}),
    "same_scales": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.05, 0.05, 0.05), "zp": (0, 0, 0)}),
    "scale_ratio_100": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.001, 0.1, 0.1)}),
    "scale_ratio_100_swapped": ((2, 3, 5), (2, 3, 5), {"s": (0.1, 0.001, 0.2)}),
    "broadcast_channel_vector": ((1, 4, 4, 3), (1, 1, 1, 3), {}),
    "broadcast_both_ways": ((2, 1, 3, 1), (1, 4, 1, 5), {}),
    "broadcast_rank_differs": ((1, 4, 4, 3), (3,), {}),
    "const_scalar": ((1, 4, 4, 3), (), {"const_b": True}),
    "const_scalar_1": ((1, 4, 4, 3), (1,), {"const_b": True, "zp": (-128, 127, 0)}),
    "const_channel_vector": ((1, 4, 4, 6), (6,), {"const_b": True}),
    # inputs all >= 0 (zp -128) into an output starting at -128, and all <= 0 (zp 127) into one ending at 127
    "zp_m128_out_m128": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (-128, -128, -128)}),
    "zp_127_out_127": ((1, 3, 3, 4), (1, 3, 3, 4), {"zp": (127, 127, 127), "s": (0.02, 0.03, 0.05)}),
    "relu": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU", "zp": (0, 0, -60)}),
    "relu6": ((1, 4, 4, 3), (1, 1, 1, 3), {"act": "RELU6", "s": (0.05, 0.05, 0.04), "zp": (0, 0, -100)}),
    "relu_n1_to_1": ((1, 4, 4, 3), (1, 4, 4, 3), {"act": "RELU_N1_TO_1", "s": (0.01, 0.01, 0.01),
                                                  "zp": (0, 0, 0)}),
    "saturate": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.1, 0.1, 0.01)}),
    "output_scale_large": ((1, 4, 4, 3), (1, 4, 4, 3), {"s": (0.01, 0.02, 1.0), "zp": (5, -5, 0)}),
}


def case(name: str, seed: int | None = None) -> Case:
    shape_a, shape_b, kw = CASES[name]
    m, ins, y = binary_model("ADD", shape_a, shape_b, seed=len(name) if seed is None else seed, **kw)
    return Case(m, ins, [y], n=6, seed=7)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_add(tmp_path, name, golden):
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)


@pytest.mark.parametrize("target", targets("add"))
def test_add_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_add_saturates_both_rails(tmp_path):
    out = check_case(case("saturate", seed=0), tmp_path)
    assert (out == 127).mean() > 0.2 and (out == -128).mean() > 0.2
