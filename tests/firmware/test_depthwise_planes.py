"""The int8 depthwise MVE kernel's channel planes (templates/c/kernels/depthwise_conv2d_planes_mve.c.j2) on QEMU,
A/B against both other kernels of the same layer: the channels-across-lanes MVE kernel (-DDMX_DW_NO_PLANES)
and the scalar C (-DDMX_NO_MVE). All three must PASS against expected.h (the numpy reference) and print the
same outputs. The cases are the plane kernel's edges: one tap, 15, 16 and 17 taps (one gather, a full one,
two groups), a plane wider than a gather's 255-byte reach (a group per row), channel counts on both sides of
the 16-lane copy (<= 17), odd channels, strides, dilation, even kernels padded unevenly on every side, depth
multipliers (micro_speech's one input channel times 8), runs along x and along y with leftover lines done
across, zero points at the rails and a clamp narrower than int8.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from _fw_harness import firmware_marks

from dmxgen import firmware
from dmxgen.frontends.tflite import load_tflite
from dmxgen.ops.depthwise_conv2d import plane_shape, tap_groups
from dmxgen.targets import export
from tests.backends.test_c_ops import conv_model

pytestmark = firmware_marks

BUILDS = {"planes": "", "lanes": "-DDMX_DW_NO_PLANES", "scalar": "-DDMX_NO_MVE"}

# in_shape, kernel, stride, padding, dilation, depth multiplier, input zero point, activation
CASES = {
    "3x3, 19 channels (16-bit copy)": ((1, 8, 7, 19), (3, 3), (1, 1), "SAME", (1, 1), 1, -128, "NONE"),
    "3x3 / 2, 8 channels (16-lane copy)": ((1, 9, 9, 8), (3, 3), (2, 2), "SAME", (1, 1), 1, 127, "NONE"),
    "1x1, one tap": ((1, 6, 6, 5), (1, 1), (1, 1), "VALID", (1, 1), 1, 3, "RELU6"),
    "3x5, 15 taps": ((1, 7, 9, 6), (3, 5), (1, 1), "SAME", (1, 1), 1, -7, "NONE"),
    "4x4, 16 taps, padded unevenly": ((1, 8, 8, 3), (4, 4), (1, 1), "SAME", (1, 1), 1, 0, "RELU"),
    "1x17, two groups": ((1, 5, 20, 4), (1, 17), (1, 1), "SAME", (1, 1), 1, -128, "NONE"),
    "wider than a gather's reach": ((1, 6, 130, 3), (3, 3), (1, 1), "SAME", (1, 1), 1, 5, "NONE"),
    "tall and narrow (runs along y)": ((1, 25, 5, 24), (3, 3), (1, 1), "SAME", (1, 1), 1, -128, "NONE"),
    "dilation 2, uneven stride": ((1, 10, 9, 20), (3, 3), (2, 1), "SAME", (2, 2), 1, 9, "NONE"),
    "depth multiplier 2": ((1, 8, 7, 6), (3, 3), (1, 1), "SAME", (1, 1), 2, -3, "NONE"),
    "micro_speech: one channel x 8, 10x8 / 2": ((1, 20, 16, 1), (10, 8), (2, 2), "SAME", (1, 1), 8, -128, "NONE"),
}
SLOW = {"3x5, 15 taps", "dilation 2, uneven stride", "wider than a gather's reach", "depth multiplier 2"}


def test_tap_groups_follow_the_gathers_reach():
    assert tap_groups(3, 3, 1, 1, 50) == 1  # 2 * 50 + 2 <= 255
    assert tap_groups(4, 4, 1, 1, 11) == 1  # 16 taps, one vector
    assert tap_groups(1, 17, 1, 1, 36) == 2  # 17 taps
    assert tap_groups(3, 3, 1, 1, 132) == 2  # rows 0-1 within 255 bytes, row 2 (264..266) beyond
    assert tap_groups(10, 8, 1, 1, 23) == 5  # two rows of eight per gather


def test_a_plane_only_where_it_pays():
    a = dict(stride=(1, 1), dilation=(1, 1), pad=(1, 1, 1, 1))
    assert plane_shape((1, 25, 5, 64), (1, 25, 5, 64), (3, 3), **a) == (27, 7)
    assert plane_shape((1, 3, 3, 256), (1, 3, 3, 256), (3, 3), **a) is None  # 9 outputs a channel
    assert plane_shape((1, 12, 12, 3), (1, 12, 12, 3), (12, 12), **a) is None  # 144 taps: 9 groups


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW else []) for c in CASES])
def test_planes_vs_lanes_vs_scalar(tmp_path, case):
    in_shape, k, stride, padding, dilation, mult, in_zp, act = CASES[case]
    model = conv_model(tmp_path, "dw", in_shape=in_shape, k=k, stride=stride, padding=padding, dilation=dilation,
                       depthwise=True, mult=mult, in_zp=in_zp, act=act, seed=sum(in_shape))
    out = tmp_path / "out"
    export(load_tflite(model), out, source=model, fmt="dense", n_vectors=1)
    layer = next(x for x in json.loads((out / "manifest.json").read_text())["layers"] if x["op"] == "depthwise_conv2d")
    assert layer["scratch_bytes"] > 0, "no plane: the case does not reach the plane kernel"
    runs = {}
    for name, flags in BUILDS.items():
        r = firmware.run(out, build_dir=out / f"build-{name}", extra_cflags=flags)
        assert r.passed, f"{name}: {r.verdict}\n{r.log[-1500:]}"
        runs[name] = r
    outputs = {name: np.array(r.outputs) for name, r in runs.items()}
    assert outputs["planes"].size == int(np.prod(layer["output"]))
    assert np.array_equal(outputs["planes"], outputs["lanes"]) and np.array_equal(outputs["planes"], outputs["scalar"])
    counts = {name: next(c.instructions for c in r.layers if c.name == layer["name"]) for name, r in runs.items()}
    assert counts["planes"] != counts["lanes"], "the two MVE builds ran the same kernel"
    assert counts["planes"] < counts["scalar"], counts
