"""AVERAGE_POOL_2D: SAME padding (the average counts only valid taps), VALID, strides, 1x1 output; int16 (16x8).

The case table and the model builder are shared with test_max_pool2d.py.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph, Op, QuantParams, Tensor
from dmxgen.graph.fixedpoint import round_half_away_array
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16
from .test_conv2d import out_size


def pool_model(opname, *, n=1, h=8, w=8, c=3, f=(2, 2), stride=(2, 2), padding="VALID", act="NONE",
               scale=0.05, zp=-128, dtype="int8"):
    m = ModelBuilder()
    x = m.tensor("x", [n, h, w, c], dtype, scale=scale, zero_point=zp)
    y = m.tensor("y", [n, out_size(h, f[0], stride[0], 1, padding), out_size(w, f[1], stride[1], 1, padding), c],
                 dtype, scale=scale, zero_point=zp)
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


# -- divisor "window": PyTorch's count_include_pad=True (and ceil_mode as an `overhang`) -------------
# name -> (h, w, kernel, stride, torch padding, ceil_mode); the graphs are built directly, as no
# TFLite operator has the attribute
WINDOW_CASES = {
    "window_3x3_s2_p1": (8, 7, 3, 2, 1, False),
    "window_3x3_s2_p1_ceil": (8, 8, 3, 2, 1, True),
    "window_2x2_s2_p1_ceil_odd": (7, 9, 2, 2, 1, True),
    "window_3x3_s1_p1": (5, 6, 3, 1, 1, False),
    "window_1x3_p1_ceil": (1, 10, (1, 3), (1, 2), (0, 1), True),  # an AvgPool1d
}


def window_graph(name: str, dtype: str = "int8"):
    h, w, k, s, p, ceil = WINDOW_CASES[name]
    k, s, p = ((v, v) if isinstance(v, int) else v for v in (k, s, p))
    oh, ow = torch.nn.functional.avg_pool2d(torch.zeros(1, 1, h, w), k, s, p, ceil_mode=ceil).shape[2:]
    extra = [max(0, (o - 1) * st + kk - (i + 2 * pp)) for i, o, kk, st, pp in zip((h, w), (oh, ow), k, s, p)]
    q = QuantParams(np.array([0.05], np.float32), np.array([-3 if dtype == "int8" else 0]))
    info = np.iinfo(dtype)
    g = Graph(source="avg_pool2d window test")
    g.add_tensor(Tensor("x", (1, h, w, 3), dtype, q))
    g.add_tensor(Tensor("y", (1, oh, ow, 3), dtype, q))
    g.ops.append(Op("pool", "avg_pool2d", ["x"], ["y"], {
        "filter": k, "stride": s, "pad": (p[0], p[1], p[0] + extra[0], p[1] + extra[1]), "activation": "NONE",
        "act_min": int(info.min), "act_max": int(info.max), "divisor": "window", "overhang": tuple(extra)}))
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    return g, (k, s, p, ceil)


@pytest.mark.parametrize("name", list(WINDOW_CASES))
def test_avg_pool2d_window_divisor_is_torchs_count_include_pad(name):
    g, (k, s, p, ceil) = window_graph(name)
    x = np.random.default_rng(3).integers(-128, 128, size=g.tensors["x"].shape).astype(np.int8)
    got = reference.run(g, [x])["y"]
    nchw = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)
    avg = torch.nn.functional.avg_pool2d(nchw, k, s, p, ceil_mode=ceil, count_include_pad=True)
    want = round_half_away_array(avg.permute(0, 2, 3, 1).numpy()).astype(np.int64)
    assert np.array_equal(got.astype(np.int64), want)
    # the "valid" divisor (TFLite's) differs wherever a window overlaps the padding
    valid = reference.run(_with(g, divisor="valid"), [x])["y"]
    assert not np.array_equal(valid, got)


def _with(g, **attrs):
    g = copy.deepcopy(g)
    g.ops[0].attrs.update(attrs)
    return g


def test_avg_pool2d_overhang_must_lie_in_the_padding():
    g, _ = window_graph("window_3x3_s2_p1_ceil")
    with pytest.raises(DmxError, match=r"overhang \[3, 1\] is not within the bottom / right padding"):
        _with(g, overhang=(3, 1)).validate()


@pytest.mark.parametrize("target", targets("avg_pool2d"))
def test_avg_pool2d_window_divisor_on_targets(tmp_path, target):
    cases = {name: Case(window_graph(name)[0], [], [], n=4, seed=8) for name in WINDOW_CASES}
    cases["valid_same_3x3_s2_odd"] = pool_case("AVERAGE_POOL_2D", "same_3x3_s2_odd")  # both kernels in one build
    check_targets(tmp_path, target, cases)


def test_window_kernel_is_printed_only_for_models_that_use_it(tmp_path):
    m, x, y = pool_model("AVERAGE_POOL_2D", **CASES["same_3x3_s2_odd"])
    valid = load_tflite(save(m, tmp_path, [x], [y]))
    window, _ = window_graph("window_3x3_s2_p1_ceil")
    texts = {}
    for name, g in (("valid", valid), ("window", window)):
        export(g, tmp_path / name, targets=("c",), n_vectors=1)
        texts[name] = (tmp_path / name / "kernels.h").read_text()
    assert "dmx_avg_pool2d_s8" in texts["valid"] and "avg_pool2d_window" not in texts["valid"]
    # the window kernel calls avg_pool2d's rounding helper: both are printed
    assert "dmx_avg_pool2d_window_s8" in texts["window"] and "dmx_avg_round_s8(int32_t" in texts["window"]


# -- int16 (TFLite's 16x8 scheme: int16 activations, zero point 0) ------------------------------------
def case16(name: str) -> Case:
    c = pool_case("AVERAGE_POOL_2D", name)
    c.m.to_int16()
    return c


# int16-only cases: fused activations clamp on the int16 grid, and windows of many taps at -32768 / 32767
CASES16 = {
    "relu_s16": {"act": "RELU", "scale": 1e-4, "padding": "SAME", "f": (3, 3), "h": 7},
    "relu6_s16": {"act": "RELU6", "scale": 3e-4},
    "relu_n1_to_1_s16": {"act": "RELU_N1_TO_1", "scale": 5e-5, "f": (3, 3), "stride": (1, 1)},
    "global_7x9_s16": {"f": (7, 9), "h": 7, "w": 9, "stride": (1, 1), "scale": 1e-3},
}


def s16_case(name: str) -> Case:
    m, x, y = pool_model("AVERAGE_POOL_2D", **CASES16[name], zp=0, dtype="int16")
    return Case(m, [x], [y], n=6, seed=16)


def all16() -> dict[str, Case]:
    return {**{f"{name}_s16": case16(name) for name in CASES}, **{name: s16_case(name) for name in CASES16}}


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(all16()))
def test_avg_pool2d_int16(tmp_path, name, golden):
    assert check_case(all16()[name], tmp_path, goldens=(golden,)).dtype == np.int16


def test_avg_pool2d_int16_clamps_to_the_fused_activation_on_int16_codes(tmp_path):
    c = s16_case("relu6_s16")  # RELU6 at scale 3e-4 is code 20000, inside int16 (an int8 clamp would be 127)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    assert (g.ops[0].attrs["act_min"], g.ops[0].attrs["act_max"]) == (0, 20000)
    out = reference.run(g, [np.full(g.tensors[g.inputs[0]].shape, 32767, np.int16)])[g.outputs[0]]
    assert out.dtype == np.int16 and np.all(out == 20000)


@pytest.mark.parametrize("name", list(WINDOW_CASES))
def test_avg_pool2d_window_divisor_int16_is_torchs_count_include_pad(name):
    g, (k, s, p, ceil) = window_graph(name, "int16")
    x = np.random.default_rng(5).integers(-32768, 32768, size=g.tensors["x"].shape).astype(np.int16)
    got = reference.run(g, [x])["y"]
    nchw = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)
    avg = torch.nn.functional.avg_pool2d(nchw, k, s, p, ceil_mode=ceil, count_include_pad=True)
    want = round_half_away_array(avg.permute(0, 2, 3, 1).numpy()).astype(np.int64)
    assert got.dtype == np.int16 and np.array_equal(got.astype(np.int64), want)


@pytest.mark.parametrize("target", targets16("avg_pool2d"))
def test_avg_pool2d_int16_on_targets(tmp_path, target):
    cases = all16()
    cases.update({f"{name}_s16": Case(window_graph(name, "int16")[0], [], [], n=4, seed=9)
                  for name in WINDOW_CASES})
    # the int8 kernels in the same build: each variant's struct is declared once
    cases["valid_s8"] = pool_case("AVERAGE_POOL_2D", "same_3x3_s2_odd")
    cases["window_s8"] = Case(window_graph("window_3x3_s2_p1")[0], [], [], n=4, seed=9)
    check_targets(tmp_path, target, cases)


@pytest.mark.parametrize("target", [t for t in targets16("avg_pool2d") if t.values[0] == "m55"])
def test_avg_pool2d_int16_alone_on_the_m55(tmp_path, target):
    """No int8 pooling in the model: the MVE build declares both structs from the int16 variants (the
    window kernel prints avg_pool2d's too; the firmware runs the first case of every three)."""
    check_targets(tmp_path, target, {"window_s16": Case(window_graph("window_3x3_s2_p1", "int16")[0], [], [], n=2)})


def test_avg_pool2d_int16_refuses_a_window_whose_int32_sum_can_overflow(tmp_path):
    m, x, y = pool_model("AVERAGE_POOL_2D", h=257, w=256, c=1, f=(257, 256), stride=(1, 1), scale=1e-3, zp=0,
                         dtype="int16")
    with pytest.raises(DmxError, match=r"int16 average of a 257x256 window: its int32 sum can overflow"):
        load_tflite(save(m, tmp_path, [x], [y]))
