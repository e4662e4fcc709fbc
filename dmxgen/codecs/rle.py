"""RLE with 4-bit relative indices (docs/formats.md, "RLE").

Not used by a kernel here; kept so size reports can compare dCSR with the
other compact format of the dCSR paper.
"""
from __future__ import annotations

import numpy as np

from ._base import CodecError, Encoded, check_arrays, check_matrix, row_positions

NAME = "rle"
ARRAYS = {"values": np.int8, "deltas": np.uint8, "row_counts": np.int16}
MAX_DELTA = 15  # a 4-bit delta; larger jumps take padding entries
MAX_ROW_ENTRIES = np.iinfo(np.int16).max


def encode(w: np.ndarray) -> Encoded:
    """Store each nonzero with its 4-bit distance from the previous one in its row."""
    w = check_matrix(w, NAME)
    n_rows, n_cols = (int(x) for x in w.shape)
    rows, cols = np.nonzero(w)
    cols = cols.astype(np.int64)
    _, pos = row_positions(rows, n_rows)
    prev = np.zeros_like(cols)
    prev[1:] = cols[:-1]
    prev[pos == 0] = 0  # the cursor restarts at column 0 in every row
    dist = cols - prev
    per_nz = dist // MAX_DELTA + 1  # padding entries + the entry itself
    n_entries = int(per_nz.sum())
    real = np.cumsum(per_nz) - 1
    values = np.zeros(n_entries, dtype=np.int8)
    values[real] = w[rows, cols]
    deltas = np.full(n_entries + (n_entries & 1), MAX_DELTA, dtype=np.uint8)
    deltas[real] = dist % MAX_DELTA
    deltas[n_entries:] = 0  # an odd stream leaves the last low nibble 0
    row_counts = np.bincount(rows, weights=per_nz, minlength=n_rows).astype(np.int64)
    if n_rows and row_counts.max() > MAX_ROW_ENTRIES:
        raise CodecError(f"{NAME}: a row needs {int(row_counts.max())} entries, more than int16 counts hold")
    packed = ((deltas[0::2] << 4) | deltas[1::2]).astype(np.uint8)
    arrays = {"values": values, "deltas": packed, "row_counts": row_counts.astype(np.int16)}
    nbytes = n_entries + (n_entries + 1) // 2 + 2 * n_rows
    return Encoded(NAME, (n_rows, n_cols), arrays, nbytes,
                   {"nnz": int(rows.size), "entries": n_entries, "padding": n_entries - int(rows.size)})


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the matrix by walking each row's cursor over its deltas."""
    arrays = check_arrays(enc, NAME, ARRAYS)
    n_rows, n_cols = enc.shape
    values, packed, counts = arrays["values"], arrays["deltas"], arrays["row_counts"].astype(np.int64)
    n_entries = values.size
    if counts.size != n_rows or np.any(counts < 0) or counts.sum() != n_entries:
        raise CodecError(f"{NAME}: row_counts do not add up to the {n_entries} stored entries")
    if packed.size != (n_entries + 1) // 2:
        raise CodecError(f"{NAME}: {packed.size} delta bytes for {n_entries} entries")
    deltas = np.empty(2 * packed.size, dtype=np.int64)
    deltas[0::2] = packed >> 4
    deltas[1::2] = packed & 0xF
    deltas = deltas[:n_entries]
    rows = np.repeat(np.arange(n_rows), counts)
    cursor = np.cumsum(deltas)
    starts = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    before = np.concatenate(([0], cursor))[starts[:-1]]  # running sum before each row's first entry
    cols = cursor - before[rows]
    keep = values != 0  # padding entries carry 0 and need no write
    if keep.any() and int(cols[keep].max()) >= n_cols:
        raise CodecError(f"{NAME}: an entry lands at column {int(cols[keep].max())} of {n_cols}")
    out = np.zeros((n_rows, n_cols), dtype=np.int8)
    out[rows[keep], cols[keep]] = values[keep]
    return out
