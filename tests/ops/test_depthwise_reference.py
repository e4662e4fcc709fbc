"""The depthwise reference's tap-by-tap accumulation against the int64 einsum it replaced, over edge shapes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dmxgen.ops._checks import conv_out
from dmxgen.ops._windows import conv_patches
from dmxgen.ops.depthwise_conv2d import _tap_bound, depthwise_accumulate


def einsum_accumulate(x, w, a, out_hw):
    """The reference as it was: int64 patches, repeated per depth multiplier, one einsum."""
    _, kh, kw, _ = w.shape
    p = conv_patches(x, a, kh, kw, out_hw).astype(np.int64)
    if a.depth_multiplier > 1:
        p = np.repeat(p, a.depth_multiplier, axis=-1)
    return np.einsum("nyxhwc,hwc->nyxc", p, w[0].astype(np.int64))


# n, h, w, cin, mult, (kh, kw), stride, dilation, pad (top, left, bottom, right), x dtype, input offset
SHAPES = {
    "3x3_same": (1, 8, 8, 4, 1, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "int8", 128),
    "valid": (2, 9, 7, 5, 1, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0), "int8", -127),
    "mult2": (1, 8, 8, 3, 2, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "int8", 0),
    "mult8_one_channel": (3, 49, 10, 1, 8, (10, 4), (2, 1), (1, 1), (4, 1, 5, 2), "int8", 83),
    "mult3_s2_odd": (1, 9, 11, 2, 3, (3, 3), (2, 2), (1, 1), (0, 1, 1, 1), "int8", -5),
    "stride3": (1, 10, 11, 4, 1, (3, 3), (3, 3), (1, 1), (1, 1, 1, 1), "int8", 7),
    "dilation2": (2, 9, 9, 4, 1, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), "int8", 128),
    "dilation_1x3_mult2": (1, 6, 12, 2, 2, (1, 3), (1, 2), (1, 3), (0, 3, 0, 3), "int8", -128),
    "pad_one_side": (1, 7, 7, 6, 1, (5, 5), (2, 2), (1, 1), (0, 0, 4, 4), "int8", 1),
    "kernel_is_image": (1, 4, 4, 3, 1, (4, 4), (1, 1), (1, 1), (0, 0, 0, 0), "int8", 12),
    "1x1": (2, 5, 5, 7, 2, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), "int8", 3),
    "int16": (1, 9, 8, 4, 2, (3, 3), (2, 1), (1, 2), (1, 2, 1, 2), "int16", 0),
}


def make(name, rng, x_fill=None, w_fill=None):
    n, h, w, cin, mult, (kh, kw), stride, dil, pad, dtype, offset = SHAPES[name]
    info = np.iinfo(dtype)
    x = rng.integers(info.min, int(info.max) + 1, size=(n, h, w, cin)).astype(dtype)
    wt = rng.integers(-128, 128, size=(1, kh, kw, cin * mult)).astype(np.int8)
    if x_fill is not None:
        x[...] = x_fill
    if w_fill is not None:
        wt[...] = w_fill
    a = SimpleNamespace(stride=stride, dilation=dil, pad=pad, input_offset=offset, depth_multiplier=mult)
    out_hw = (conv_out(h, kh, stride[0], dil[0], pad[0], pad[2]), conv_out(w, kw, stride[1], dil[1], pad[1], pad[3]))
    return x, wt, a, out_hw


@pytest.mark.parametrize("extreme", [None, "max", "min"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_tap_accumulation_equals_the_einsum(name, extreme):
    rng = np.random.default_rng(len(name))
    dtype = SHAPES[name][9]
    fill = {None: (None, None), "max": (np.iinfo(dtype).max, -128), "min": (np.iinfo(dtype).min, -128)}[extreme]
    x, w, a, out_hw = make(name, rng, *fill)
    want = einsum_accumulate(x, w, a, out_hw)
    p = conv_patches(x, a, w.shape[1], w.shape[2], out_hw)
    got = depthwise_accumulate(p, w[0], a.depth_multiplier, _tap_bound(x.dtype, a.input_offset, w))
    assert got.dtype == np.int64 and got.shape == want.shape
    assert np.array_equal(got, want)
    # the int64 path gives the same numbers
    assert np.array_equal(depthwise_accumulate(p, w[0], a.depth_multiplier, 2**31), want)


def test_sums_beyond_int32_take_the_int64_path():
    """int16 inputs at the rail over 600 taps: 600 * 32768 * 128 > 2**31, where int32 would wrap."""
    x = np.full((1, 1, 600, 2), -32768, np.int16)
    w = np.full((1, 1, 600, 2), -128, np.int8)
    a = SimpleNamespace(stride=(1, 1), dilation=(1, 1), pad=(0, 0, 0, 0), input_offset=0, depth_multiplier=1)
    bound = _tap_bound(x.dtype, 0, w)
    assert bound >= 2**31
    p = conv_patches(x, a, 1, 600, (1, 1))
    got = depthwise_accumulate(p, w[0], 1, bound)
    assert np.array_equal(got, einsum_accumulate(x, w, a, (1, 1)))
    assert int(got[0, 0, 0, 0]) == 600 * 32768 * 128
    with np.errstate(over="ignore"):  # a bound of 0 claims int32 suffices: it wraps, so the bound matters
        assert not np.array_equal(depthwise_accumulate(p, w[0], 1, 0), got)
