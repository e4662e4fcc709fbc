"""AVERAGE_POOL_2D: SAME padding (the average counts only valid taps), VALID, strides, 1x1 output.

The case table and the model builder are shared with test_max_pool2d.py.
"""
from __future__ import annotations

import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case
from ._targets import check_targets, targets
from .test_conv2d import out_size


def pool_model(opname, *, n=1, h=8, w=8, c=3, f=(2, 2), stride=(2, 2), padding="VALID", act="NONE",
               scale=0.05, zp=-128):
    m = ModelBuilder()
    x = m.tensor("x", [n, h, w, c], scale=scale, zero_point=zp)
    y = m.tensor("y", [n, out_size(h, f[0], stride[0], 1, padding), out_size(w, f[1], stride[1], 1, padding), c],
                 scale=scale, zero_point=zp)
    m.op(opname, [x], [y], padding=padding, strideH=stride[0], strideW=stride[1], filterHeight=f[0],
         filterWidth=f[1], fusedActivationFunction=act)
    return m, x, y


CASES = {
    "valid_2x2_s2": {},
    "valid_3x3_s2_odd": {"f": (3, 3), "h": 9, "w": 7},
    "valid_stride_ne_filter": {"f": (3, 3), "stride": (1, 1)},
    "valid_s3_f2": {"f": (2, 2), "stride": (3, 3), "h": 10, "w": 11},
    "same_3x3_s1": {"f": (3, 3), "stride": (1, 1), "padding": "SAME"},
    "same_3x3_s2_odd": {"f": (3, 3), "padding": "SAME", "h": 9, "w": 9},
    "same_2x2_s2_odd": {"f": (2, 2), "padding": "SAME", "h": 7, "w": 5},  # pad only after
    "same_4x4_s3": {"f": (4, 4), "stride": (3, 3), "padding": "SAME", "h": 10, "w": 8},
    "same_1x5": {"f": (1, 5), "stride": (1, 2), "padding": "SAME", "w": 9},
    "global_valid_1x1_out": {"f": (5, 6), "h": 5, "w": 6, "stride": (1, 1)},
    "global_same_1x1_out": {"f": (5, 5), "h": 5, "w": 5, "stride": (5, 5), "padding": "SAME"},
    "filter_larger_than_image_same": {"f": (7, 7), "h": 4, "w": 5, "stride": (1, 1), "padding": "SAME"},
    "zp_127": {"zp": 127, "f": (3, 3), "padding": "SAME", "h": 7},
    "relu": {"act": "RELU", "zp": -20, "padding": "SAME", "f": (3, 3), "h": 7},
    "relu6": {"act": "RELU6", "scale": 0.03, "zp": -100},
    "relu_n1_to_1": {"act": "RELU_N1_TO_1", "scale": 0.01, "zp": 0},
    "batch2": {"n": 2, "f": (3, 3), "padding": "SAME", "h": 5, "w": 6},
}


def pool_case(opname: str, name: str) -> Case:
    m, x, y = pool_model(opname, **CASES[name])
    return Case(m, [x], [y], n=6, seed=6)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_avg_pool2d(tmp_path, name, golden):
    check_case(pool_case("AVERAGE_POOL_2D", name), tmp_path, goldens=(golden,))


@pytest.mark.parametrize("target", targets("avg_pool2d"))
def test_avg_pool2d_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: pool_case("AVERAGE_POOL_2D", name) for name in CASES})
