"""lut_interp: a per-channel int8 table of G points, linearly interpolated (PSA-Compress's LERP tables).

The input code + 128 (0..255) is split into a segment and a fraction: with
step = 256 / G = 2**b, msb = min(idx >> b, G - 2), y0 = table[c][msb],
y1 = table[c][msb + 1] and y = y0 + RS((y1 - y0) * (idx & (step - 1)), b), RS being
the round-half-up shift (v + 2**(b-1)) >> b of PSA-Compress's numpy reference. As
there, the last point is never reached exactly: the top segment's fraction runs 0..step-1.
The channel is the tensor's last dim (NHWC activations, [N, T, D] tokens).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._spec import Ints, OpSpec

POINTS = (2, 4, 8, 16, 32, 64, 128)  # G: a power of two with at least two codes per segment


@dataclass(frozen=True)
class LutInterpAttrs:
    table: Ints  # channels x points int8 codes, channel-major: the outputs at input codes -128 + step * g
    points: int = 64  # G


def segments(idx: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(segment index, fraction, shift b) of input codes + 128 for a table of `points` points."""
    bits = (256 // points).bit_length() - 1
    return np.minimum(idx >> bits, points - 2), idx & ((1 << bits) - 1), bits


def interpolate(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The kernel in int64 numpy: table [channels, G] (or [1, G] for every channel), codes [..., channels]."""
    table = np.asarray(table, dtype=np.int64)
    idx = codes.astype(np.int64) + 128
    msb, frac, bits = segments(idx, table.shape[1])
    ch = np.broadcast_to(np.arange(codes.shape[-1]) % table.shape[0], codes.shape)
    y0, y1 = table[ch, msb], table[ch, msb + 1]
    return y0 + (((y1 - y0) * frac + (1 << (bits - 1))) >> bits)


@register
class LutInterp(OpSpec):
    kind = "lut_interp"
    summary = "per-channel int8 table of G points with linear interpolation (LERP-PSA activations)"
    Attrs = LutInterpAttrs
    targets = ("c", "c_mve", "hls", "torch")

    def inplace(self, op) -> bool:
        return True

    def check(self, op, ins, out):
        a = op.a
        if ins[0].shape != out.shape:
            return f"input {list(ins[0].shape)} and output {list(out.shape)} differ"
        if a.points not in POINTS:
            return f"points {a.points} is not one of {', '.join(map(str, POINTS))}"
        channels = ins[0].shape[-1] if ins[0].shape else 1
        n = np.size(a.table)
        if n not in (a.points, a.points * channels):
            return f"table has {n} entries, expected {a.points} or {a.points} x {channels} channels"
        t = np.asarray(a.table)
        if t.size and (t.min() < -128 or t.max() > 127):
            return f"table entries span [{t.min()}, {t.max()}], outside int8"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        table = np.asarray(a.table, dtype=np.int64).reshape(-1, a.points)
        return interpolate(table, args[0]).astype(out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        shape = graph.tensors[op.inputs[0]].shape
        channels = shape[-1] if shape else 1
        table = np.asarray(a.table, dtype=np.int8).reshape(-1, a.points)
        if table.shape[0] == 1:
            table = np.repeat(table, channels, axis=0)  # the kernels index channel * G + segment
        bits = (256 // a.points).bit_length() - 1
        return {"rows": int(np.prod(shape, dtype=np.int64)) // channels, "channels": channels,
                "points": a.points, "bits": bits, "table": table.reshape(-1)}
