"""The Helium 16x8 DEPTHWISE_CONV_2D (templates/c/kernels/s16/depthwise_conv2d_mve.c.j2) on the
emulated Cortex-M55 gives, to the bit, what the reference and the scalar int16 kernel
(-DDMX_NO_MVE) give, in fewer instructions.

One zoo: test_depthwise_conv2d.py's int16 cases (multipliers 1 to 3, strides, dilation, every
activation, batches, saturation, int64 biases beyond int32), and the vector code's edges:
channel counts 1, 3, 5 and 17 around the four lanes (predicated tails), depth multiplier 2 on
several input channels (the gathered inputs), stride 2 and padding on every side, a 5x5 window
with dilation whose taps leave the image on all four borders, inputs at the int16 rails, shifts
beyond 32 (int64 biases: the long form of the vector requantization) and multipliers above 1 (the
lane-by-lane fallback), loaded under LiteRT's and TFLite Micro's semantics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _fw_harness import firmware_marks, mve_and_scalar

from tests.ops._16x8 import to_16x8
from tests.ops._harness import Case
from tests.ops._targets import _export, build_zoo
from tests.ops.test_depthwise_conv2d import CASES16, dw_model

# about 30 s each: `make test-slow`; test_depthwise_conv2d.py's m55 target runs a sample of the
# int16 cases through both builds in `make test`
pytestmark = [*firmware_marks, pytest.mark.slow]

EDGES = {
    "c1": {"cin": 1, "h": 6, "w": 7},
    "c3_s2": {"cin": 3, "h": 9, "w": 8, "stride": (2, 2)},
    "c5_mult2": {"cin": 5, "mult": 2, "h": 6, "w": 7},  # 10 outputs: lanes 8..9 predicated
    "c17": {"cin": 17, "h": 5, "w": 6},
    "c3_mult2_s2": {"cin": 3, "mult": 2, "h": 9, "w": 7, "stride": (2, 2)},
    "c1_mult3": {"cin": 1, "mult": 3, "h": 5, "w": 5},
    "c5_k5_dil2": {"cin": 5, "k": (5, 5), "dil": (2, 2), "h": 7, "w": 8},  # taps outside on every side
    "c17_k5_s2": {"cin": 17, "k": (5, 5), "stride": (2, 2), "h": 8, "w": 9},
    "c4_k1": {"cin": 4, "k": (1, 1), "h": 3, "w": 5},
    "c8_valid": {"cin": 8, "padding": "VALID", "h": 6, "w": 7},
    "c3_k2x3_s2_odd": {"cin": 3, "k": (2, 3), "stride": (2, 2), "h": 7, "w": 10},  # SAME padding bottom/right only
}
MEASURED = "c17"


def cases() -> dict[str, Case]:
    out = {}
    for k, (name, (kw, conv)) in enumerate(CASES16.items()):
        m, x, y = dw_model(seed=len(name) + 7, **kw)
        out[name] = Case(to_16x8(m, **conv), [x], [y], n=1, seed=k, extremes=False)
    for k, (name, kw) in enumerate(EDGES.items()):
        m, x, y = dw_model(seed=len(name) + 41, **kw)
        out[name] = Case(to_16x8(m), [x], [y], n=1, seed=100 + k, extremes=False)
    m, x, y = dw_model(seed=5, cin=5, h=5, w=5, stride=(2, 2))
    out["rails"] = Case(to_16x8(m), [x], [y], n=0, extremes=False, extra=[[np.full((1, 5, 5, 5), -32768, np.int16)]])
    # multipliers above 1 (shift >= 0: t < 16): requantized lane by lane; small inputs, few outputs saturate
    m, x, y = dw_model(seed=6, cin=6, h=6, w=5, spread=400.0)
    small = np.random.default_rng(6).integers(-60, 61, (1, 6, 5, 6)).astype(np.int16)
    out["scale_above_1"] = Case(to_16x8(m), [x], [y], n=0, extremes=False, extra=[[small]])
    return out


def mve_vs_scalar(tmp_path: Path, semantics: str) -> dict[str, tuple[int, int]]:
    """Both builds PASS and print the reference's outputs; per layer: (MVE, scalar) instructions."""
    zoo = build_zoo(tmp_path, cases(), "m55", semantics)
    assert len(zoo.inputs) == 1
    out, manifest = _export(zoo, tmp_path, "m55")
    assert {layer["kernel"] for layer in manifest["layers"]} == {"dmx_depthwise_conv2d_s16"}
    want = np.concatenate([np.asarray(v).reshape(-1) for v in zoo.outputs[0]])
    return mve_and_scalar(out, want)


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
def test_depthwise_16x8_mve_vs_scalar(tmp_path, semantics):
    table = mve_vs_scalar(tmp_path, semantics)
    for name, (mve, scalar) in table.items():
        print(f"{semantics} {name}: MVE {mve}, scalar {scalar}")
    slower = {name: v for name, v in table.items() if v[0] >= v[1]}
    assert not slower, slower
