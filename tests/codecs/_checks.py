"""Format invariants shared by the codec tests: names, dtypes, lengths, the nbytes formulas."""
from __future__ import annotations

import numpy as np

from dmxgen.codecs import Encoded, decode

ARRAYS = {
    "dense": {"values": "int8"},
    "csr": {"values": "int8", "col_idx": "uint16", "row_ptr": ("uint16", "uint32")},
    "dcsr": {"values": "int8", "delta_indices": "uint8", "bitmaps": "uint8", "bitmasks": "uint16",
             "group_minimums": "int8", "row_offsets": "int16", "nnze": "uint32"},
    "rle": {"values": "int8", "deltas": "uint8", "row_counts": "int16"},
    "dcsr_gather": {"values": "int8", "offsets": "uint8", "group_minimums": "int8", "row_offsets": "int16",
                    "nnze": "uint32"},
}


def ceil_half(x: int) -> int:
    return (x + 1) // 2


def formula_nbytes(enc: Encoded) -> int:
    """nbytes recomputed from array lengths alone, by the formulas of docs/formats.md."""
    a, (rows, cols) = enc.arrays, enc.shape
    if enc.format == "dense":
        return rows * cols
    if enc.format == "csr":
        nnz = a["values"].size
        return nnz + 2 * nnz + (rows + 1) * (4 if nnz > 65535 else 2)
    if enc.format == "rle":
        e = a["values"].size
        return e + ceil_half(e) + 2 * rows
    if enc.format == "dcsr_gather":
        return 2 * a["values"].size + a["group_minimums"].size + 2 * rows + 4
    v, g, m = a["values"].size, a["group_minimums"].size, a["bitmasks"].size
    return v + 17 * ceil_half(g) + g + 2 * m + 2 * rows + 4


def check_encoding(enc: Encoded, w: np.ndarray) -> None:
    """Everything a round-trip test asserts about one encoding of `w`."""
    spec = ARRAYS[enc.format]
    assert list(enc.arrays) == list(spec), enc.format
    for name, dt in spec.items():
        arr = enc.arrays[name]
        assert arr.ndim == 1, (enc.format, name)
        assert arr.dtype.name in (dt if isinstance(dt, tuple) else (dt,)), (enc.format, name, arr.dtype)
    assert enc.shape == w.shape
    assert enc.nbytes == formula_nbytes(enc) == sum(a.nbytes for a in enc.arrays.values()), enc.format
    # Decode from a bare copy of the arrays: no meta, no cached Python state.
    bare = Encoded(enc.format, tuple(enc.shape), {k: v.copy() for k, v in enc.arrays.items()}, 0)
    out = decode(bare)
    assert out.dtype == np.int8 and out.shape == w.shape
    np.testing.assert_array_equal(out, w)
    nnz = int(np.count_nonzero(w))
    if enc.format == "csr":
        assert enc.row_ptr.dtype == (np.uint32 if nnz > 65535 else np.uint16)
        assert enc.nbytes_paper == 3 * nnz + 2 * w.shape[0]
    if enc.format == "dcsr":
        check_dcsr(enc, w)
    if enc.format == "dcsr_gather":
        check_dcsr_gather(enc, w)


def check_dcsr_gather(enc: Encoded, w: np.ndarray) -> None:
    """The variant stores dCSR's very entries, minimums and row offsets; each offset is that entry's
    column minus its group's base, which fits a byte."""
    from dmxgen.codecs import encode

    ref = encode("dcsr", w)
    for name in ("values", "group_minimums", "row_offsets", "nnze"):
        np.testing.assert_array_equal(enc.arrays[name], ref.arrays[name])
    assert enc.meta["inserted_zeros"] == ref.meta["inserted_zeros"]
    assert enc.offsets.size == enc.values.size


def check_dcsr(enc: Encoded, w: np.ndarray) -> None:
    a, rows = enc.arrays, enc.shape[0]
    v = a["values"].size
    assert a["nnze"].tolist() == [v]
    counts = v // rows + a["row_offsets"].astype(np.int64)
    assert counts.min() >= 0 and counts.sum() == v
    g = int(((counts + 15) // 16).sum())
    assert a["group_minimums"].size == g
    assert a["delta_indices"].size == 16 * ceil_half(g) and a["bitmaps"].size == ceil_half(g)
    maps = np.empty(2 * ceil_half(g), dtype=np.int64)
    maps[0::2], maps[1::2] = a["bitmaps"] >> 4, a["bitmaps"] & 0xF
    assert sum(bin(int(x)).count("1") for x in maps) == a["bitmasks"].size
    assert np.all(a["bitmasks"] != 0)
    if g % 2:  # an odd last group leaves the low nibbles 0
        assert np.all(a["delta_indices"][-16:] & 0xF == 0) and a["bitmaps"][-1] & 0xF == 0
    mins = a["group_minimums"].astype(int)
    assert mins.min(initial=0) >= -127 and mins.max(initial=0) <= 126
    # The stored values are the nonzeros in row-major order plus explicit zeros.
    vals = a["values"]
    np.testing.assert_array_equal(vals[vals != 0], w[w != 0])
    assert enc.meta["inserted_zeros"] == v - np.count_nonzero(w)
    assert enc.meta["groups"] == g
