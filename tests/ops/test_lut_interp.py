"""lut_interp: per-channel interpolated tables, bit-exact on all 256 codes of every channel.

The expected values come from PSA-Compress's numpy reference written out here element by
element (msb = min(idx >> 2, 62), y = y0 + RS((y1 - y0) * (idx & 3), 2) for G = 64,
RS the round-half-up shift), not from dmxgen's kernel.
"""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.graph import Graph, Op, QuantParams, Tensor

from ._harness import Case
from ._targets import check_targets, targets

VALID_ATTRS = [{"table": np.zeros(64, np.int8)}, {"table": np.zeros(3 * 16, np.int8), "points": 16}]


def psa_compress_reference(table: np.ndarray, x: int, points: int) -> int:
    """One element, as PSA-Compress's reference computes it (plain Python integers)."""
    step = 256 // points
    shift = step.bit_length() - 1
    idx = x + 128
    msb = min(idx // step, points - 2)
    y0, y1 = int(table[msb]), int(table[msb + 1])
    return y0 + ((y1 - y0) * (idx % step) + step // 2) // step  # floor division: >> on negatives too


def graph(channels: int, points: int, rows: int, seed: int, shared: bool = False, rank: int = 3) -> Graph:
    rng = np.random.default_rng(seed)
    table = rng.integers(-128, 128, size=(1 if shared else channels) * points).astype(np.int8)
    shape = (1, rows, channels) if rank == 3 else (1, 1, rows, channels)
    q = QuantParams(np.array([0.05], np.float32), np.array([0]))
    g = Graph(source="lut_interp test")
    g.add_tensor(Tensor("x", shape, "int8", q))
    g.add_tensor(Tensor("y", shape, "int8", q))
    g.ops.append(Op("act", "lut_interp", ["x"], ["y"], {"table": table, "points": points}))
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    return g


def every_code(g: Graph) -> np.ndarray:
    """Each channel sees all 256 codes: row k holds code k - 128 in every channel (rows >= 256)."""
    shape = g.tensors["x"].shape
    rows, channels = shape[-2], shape[-1]
    codes = (np.arange(rows) % 256 - 128).astype(np.int8)
    return np.broadcast_to(codes[:, None], (rows, channels)).reshape(shape).copy()


CASES = {"g64_c5": (5, 64, 256, False), "g16_c3": (3, 16, 256, False), "g2_c1": (1, 2, 256, False),
         "g128_c9": (9, 128, 256, False), "g32_shared": (4, 32, 256, True), "g64_c17": (17, 64, 300, False)}


@pytest.mark.parametrize("name", list(CASES))
def test_reference_equals_psa_compress_on_every_code(name):
    channels, points, rows, shared = CASES[name]
    g = graph(channels, points, rows, seed=len(name), shared=shared)
    x = every_code(g)
    got = reference.run(g, [x])["y"].reshape(rows, channels)
    table = np.asarray(g.ops[0].attrs["table"]).reshape(-1, points)
    want = np.array([[psa_compress_reference(table[c % table.shape[0]], int(v), points)
                      for c, v in enumerate(row)] for row in x.reshape(rows, channels)])
    assert np.array_equal(got, want)
    # the grid points themselves come out unchanged (fraction 0), except the never-reached last one
    step = 256 // points
    for gidx in range(points - 1):
        assert np.array_equal(got[gidx * step], table[np.arange(channels) % table.shape[0], gidx])


def case(name: str) -> Case:
    channels, points, rows, shared = CASES[name]
    g = graph(channels, points, rows, seed=len(name), shared=shared, rank=4 if name.endswith("17") else 3)
    return Case(g, [], [], n=2, seed=3, extra=[[every_code(g)]])


@pytest.mark.parametrize("target", targets("lut_interp"))
def test_lut_interp_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


@pytest.mark.parametrize("change, message", [
    ({"points": 48}, "points 48 is not one of 2, 4, 8"),
    ({"points": 256}, "points 256 is not one of"),
    ({"table": np.zeros(7, np.int8)}, "table has 7 entries, expected 64 or 64 x 5 channels"),
    ({"table": np.full(64, 300)}, r"table entries span \[300, 300\], outside int8"),
])
def test_bad_tables_are_refused_naming_the_op(change, message):
    g = graph(5, 64, 4, seed=1)
    g.ops[0].attrs.update(change)
    with pytest.raises(DmxError, match=message):
        g.validate()
