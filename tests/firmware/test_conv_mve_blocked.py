"""The blocked MVE CONV_2D / FULLY_CONNECTED path (2 pixels x 4 channels, assembly inner loops, four-lane
requantization from the export's pre-split shifts) gives, to the bit, what the scalar kernels and the
reference give, on the emulated Cortex-M55.

Each case is exported, built with MVE and with -DDMX_NO_MVE (the scalar reference kernels), run on QEMU:
both PASS against expected.h, print the same outputs, and the MVE build runs fewer instructions. The shapes
hit the kernel's edges: K = 1, 15, 16, 17 (no full chunk, one, a predicated tail), channel counts not
multiple of 4 (the 1..3-row tail block), odd pixel counts (the lone last pixel) and pairs across output
rows, stride 2, padding on every side and only after (SAME with even sizes), 1x1 read in place, kxk rows
read in place (k_w * in_c % 16 == 0), im2col with dilation, per-tensor and per-channel scales, shifts
that are positive, zero and negative in one layer (the left-shift and zero-shift lanes), single rounding
(LiteRT FULLY_CONNECTED) on four lanes and its lane-by-lane fallback (a shift > -2), double rounding
(TFLM semantics).
"""
from __future__ import annotations

import numpy as np
import pytest
from _fw_harness import firmware_marks

from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder
from tests.backends.conftest import rand_weights, save
from tests.backends.test_c_ops import _out_hw
from tests.firmware.test_firmware_mve import mve_vs_scalar, sample_file

pytestmark = firmware_marks


def conv(tmp_path, in_shape, cout, k=(1, 1), stride=(1, 1), padding="VALID", dilation=(1, 1), per_channel=True,
         in_zp=-7, out_gain=60.0, seed=0):
    """A CONV_2D model; out_gain sets the output scale against sqrt(taps) * in_scale * w_scale (small gains:
    effective scales above 1, positive shifts)."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    n, h, w, cin = in_shape
    x = m.tensor("x", in_shape, scale=0.05, zero_point=in_zp)
    ws = rng.uniform(0.004, 0.02, cout) if per_channel else np.array([0.01])
    wt = m.tensor("w", [cout, k[0], k[1], cin], scale=ws, zero_point=np.zeros(ws.size),
                  data=rand_weights(rng, [cout, k[0], k[1], cin]), axis=0)
    b = m.tensor("b", [cout], "int32", scale=ws * 0.05, zero_point=np.zeros(ws.size),
                 data=rng.integers(-4000, 4000, cout))
    oh = _out_hw(h, k[0], stride[0], dilation[0], padding)
    ow = _out_hw(w, k[1], stride[1], dilation[1], padding)
    y = m.tensor("y", [n, oh, ow, cout], scale=0.05 * float(ws.mean()) * np.sqrt(k[0] * k[1] * cin) * out_gain,
                 zero_point=5)
    m.op("CONV_2D", [x, wt, b], [y], padding=padding, strideH=stride[0], strideW=stride[1],
         dilationHFactor=dilation[0], dilationWFactor=dilation[1], fusedActivationFunction="NONE")
    return save(tmp_path, "conv", m, [x], [y])


def fc(tmp_path, batches, cin, cout, in_zp=3, out_scale=None, seed=0):
    """A FULLY_CONNECTED model (per-tensor, as TFLite's FC); out_scale defaults to a typical one (shift <= -2)."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    x = m.tensor("x", [batches, cin], scale=0.05, zero_point=in_zp)
    wt = m.tensor("w", [cout, cin], scale=0.01, zero_point=0, data=rand_weights(rng, (cout, cin)))
    b = m.tensor("b", [cout], "int32", scale=0.0005, zero_point=0, data=rng.integers(-3000, 3000, cout))
    y = m.tensor("y", [batches, cout], scale=out_scale or 0.05 * 0.01 * np.sqrt(cin) * 60, zero_point=-7)
    m.op("FULLY_CONNECTED", [x, wt, b], [y], fusedActivationFunction="NONE")
    return save(tmp_path, "fc", m, [x], [y])


@pytest.mark.parametrize("in_shape,cout,k,stride,padding,dilation,per_channel", [
    ((1, 5, 7, 1), 5, (1, 1), (1, 1), "VALID", (1, 1), True),     # K = 1, 35 pixels, 4 + 1 channels
    ((1, 6, 5, 15), 7, (1, 1), (2, 2), "VALID", (1, 1), True),    # K = 15 (no full chunk), strided 1x1
    ((1, 5, 5, 16), 9, (1, 1), (1, 1), "VALID", (1, 1), False),   # K = 16, 25 pixels, per-tensor
    ((1, 4, 7, 17), 12, (1, 1), (1, 1), "VALID", (1, 1), True),   # K = 17: one chunk and a 1-byte tail
    ((1, 7, 5, 16), 6, (3, 3), (1, 1), "SAME", (1, 1), True),     # rows in place, pads on every side, odd width
    ((1, 8, 8, 16), 13, (3, 3), (2, 2), "SAME", (1, 1), True),    # stride 2: pads after only, 13 channels
    ((1, 9, 7, 3), 16, (3, 3), (2, 2), "SAME", (1, 1), False),    # K = 27 through im2col (a first layer)
    ((1, 9, 8, 5), 11, (3, 2), (1, 1), "VALID", (2, 1), True),    # vertical dilation, K = 30
    ((1, 8, 6, 32), 8, (3, 3), (1, 1), "SAME", (1, 2), True),     # horizontal dilation: im2col, K = 288
])
def test_conv2d_blocked(tmp_path, in_shape, cout, k, stride, padding, dilation, per_channel):
    model = conv(tmp_path, in_shape, cout, k, stride, padding, dilation, per_channel)
    mve_vs_scalar(model, tmp_path / "out", input_files=sample_file(tmp_path, in_shape, "extremes"),
                  kernel="dmx_conv2d_dense_s8")


@pytest.mark.parametrize("in_zp,mode", [(-128, "extremes"), (127, "random")])
def test_conv2d_mixed_shifts(tmp_path, in_zp, mode):
    """Per-channel effective scales from about 0.3 to 1.7: left shifts, zero shifts and right shifts in one
    layer (dmx_requant_t.left and the lanes that do not shift right)."""
    model = conv(tmp_path, (1, 5, 5, 17), 10, (3, 3), (1, 1), "SAME", in_zp=in_zp, out_gain=0.1)
    graph = load_tflite(model)
    shifts = set(np.asarray(graph.ops[0].attrs["shift"]).reshape(-1).tolist())
    assert min(shifts) < 0 < max(shifts) and 0 in shifts, shifts
    mve_vs_scalar(model, tmp_path / "out", input_files=sample_file(tmp_path, (1, 5, 5, 17), mode),
                  kernel="dmx_conv2d_dense_s8")


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])  # single rounding (four lanes) and double
@pytest.mark.parametrize("batches,cin,cout", [(1, 1, 5), (2, 15, 7), (1, 16, 4), (2, 17, 9), (1, 130, 13)])
def test_fully_connected_blocked(tmp_path, semantics, batches, cin, cout):
    model = fc(tmp_path, batches, cin, cout, in_zp=-128)
    mve_vs_scalar(model, tmp_path / "out", semantics=semantics,
                  input_files=sample_file(tmp_path, (batches, cin), "extremes"),
                  kernel="dmx_fully_connected_dense_s8")


def test_fully_connected_single_rounding_fallback(tmp_path):
    """An effective scale of about 0.3 (shift -1): single rounding needs the 64-bit product's low word, so
    the four lanes go through the scalar dmx_requant_s8 (dmx_requant_t.right is NULL)."""
    model = fc(tmp_path, 2, 33, 6, out_scale=0.05 * 0.01 / 0.3)
    graph = load_tflite(model, semantics="tflite")
    assert max(np.asarray(graph.ops[0].attrs["shift"]).reshape(-1)) > -2
    mve_vs_scalar(model, tmp_path / "out", semantics="tflite", input_files=sample_file(tmp_path, (2, 33), "random"),
                  kernel="dmx_fully_connected_dense_s8")


@pytest.mark.parametrize("op,semantics", [("CONV_2D", "tflite"), ("FULLY_CONNECTED", "tflm"),
                                          ("FULLY_CONNECTED", "tflite")])
def test_requant_ties(tmp_path, op, semantics):
    """Power-of-two scales (effective scale 2^-5: multiplier 2^30, shift -4) put about one output in 16 on
    an exact half, negative ones included: the half-away-from-zero rounding of double rounding and the
    half-up of single rounding must both match the scalar code there."""
    rng = np.random.default_rng(7)
    m = ModelBuilder()
    cin, cout = 17, 9
    shape = [1, 5, 5, cin] if op == "CONV_2D" else [4, cin]
    x = m.tensor("x", shape, scale=2.0 ** -4, zero_point=-3)
    wshape = [cout, 1, 1, cin] if op == "CONV_2D" else [cout, cin]
    wt = m.tensor("w", wshape, scale=np.full(1, 2.0 ** -6), zero_point=np.zeros(1),
                  data=rng.integers(-3, 4, wshape).astype(np.int8), axis=0)
    b = m.tensor("b", [cout], "int32", scale=np.full(1, 2.0 ** -10), zero_point=np.zeros(1),
                 data=rng.integers(-300, 300, cout))
    y = m.tensor("y", shape[:-1] + [cout], scale=2.0 ** -5, zero_point=2)
    opts = dict(padding="VALID", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1) if op == "CONV_2D" else {}
    m.op(op, [x, wt, b], [y], fusedActivationFunction="NONE", **opts)
    model = save(tmp_path, "ties", m, [x], [y])
    at = load_tflite(model, semantics=semantics).ops[0].attrs
    assert list(np.asarray(at["multiplier"]).reshape(-1))[:1] == [2 ** 30] and at["shift"][0] == -4, at
    mve_vs_scalar(model, tmp_path / "out", semantics=semantics, input_files=sample_file(tmp_path, shape, "random"),
                  kernel=f"dmx_{'conv2d' if op == 'CONV_2D' else 'fully_connected'}_dense_s8")
