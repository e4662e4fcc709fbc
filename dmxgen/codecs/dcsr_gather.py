"""dcsr_gather: dCSR with each entry's gather offset stored ready to use (docs/formats-dcsr-gather.md).

A single input vector cannot amortise dCSR's per-group decode (nibbles, extension
maps and masks: ~33 instructions per 16-lane group on the M55). This variant keeps
dCSR's steps 1-6 exactly (the same entries, inserted zeros, group minimums and row
offsets) and replaces step 7 by one uint8 per entry, d_j + j*s, which step 5
already bounds by 255: the MVE kernel loads 16 offsets with one VLDRB and hands them
to the gather. It costs V - 17*ceil(G/2) - 2*M bytes more than dCSR.
"""
from __future__ import annotations

import numpy as np

from ._base import CodecError, Encoded, check_arrays, check_matrix
from .dcsr import LANES, MAX_SPAN, entries, group_bases, scatter_groups

NAME = "dcsr_gather"
ARRAYS = {
    "values": np.int8,
    "offsets": np.uint8,
    "group_minimums": np.int8,
    "row_offsets": np.int16,
    "nnze": np.uint32,
}


def encode(w: np.ndarray) -> Encoded:
    """dCSR's steps 1-6, then per entry its column minus the group base (d_j + j*s)."""
    w = check_matrix(w, NAME)
    n_rows, n_cols = (int(x) for x in w.shape)
    vals, lay, nnz = entries(w, NAME)
    counts = lay.counts
    s_entry = np.repeat((n_cols + counts // 2) // np.maximum(counts, 1), counts)  # the dCSR slope per entry
    offsets = lay.delta + lay.lane * s_entry
    if offsets.size and (offsets.min() < 0 or offsets.max() > MAX_SPAN):  # step 5 guarantees it
        raise AssertionError(f"{NAME}: offset {int(offsets.max())} outside 0..{MAX_SPAN}")
    n_values, n_groups = int(vals.size), int(lay.stored.size)
    rel = counts - n_values // n_rows
    if rel.size and (rel.min() < np.iinfo(np.int16).min or rel.max() > np.iinfo(np.int16).max):
        raise CodecError(f"{NAME}: row entry counts spread too far for int16 row_offsets "
                         f"({int(rel.min())}..{int(rel.max())}); too many columns ({n_cols})")
    arrays = {
        "values": vals.astype(np.int8),
        "offsets": offsets.astype(np.uint8),
        "group_minimums": lay.stored.astype(np.int8),
        "row_offsets": rel.astype(np.int16),
        "nnze": np.array([n_values], dtype=np.uint32),
    }
    meta = {"nnz": nnz, "inserted_zeros": n_values - nnz, "groups": n_groups}
    return Encoded(NAME, (n_rows, n_cols), arrays, nbytes(n_values, n_groups, n_rows), meta)


def nbytes(n_values: int, n_groups: int, n_rows: int) -> int:
    """Flash bytes: values and offsets (V each), group minimums (G), row offsets (2R), nnze (4)."""
    return 2 * n_values + n_groups + 2 * n_rows + 4


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the matrix from the arrays only: lane j of a group reads column P + offsets[entry]."""
    a = check_arrays(enc, NAME, ARRAYS)
    counts, grow, gk, _, base = group_bases(a, enc.shape, NAME)
    if a["offsets"].size != a["values"].size:
        raise CodecError(f"{NAME}: {a['offsets'].size} offsets for {a['values'].size} values")
    lane = np.arange(LANES, dtype=np.int64)
    real = lane[None, :] < (counts[grow] - LANES * gk)[:, None]
    vstart = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=vstart[1:])
    vidx = np.minimum((vstart[grow] + LANES * gk)[:, None] + lane, max(a["offsets"].size - 1, 0))
    off = a["offsets"].astype(np.int64)[vidx] if a["offsets"].size else np.zeros(real.shape, dtype=np.int64)
    return scatter_groups(a["values"], counts, grow, gk, base[:, None] + off, real, enc.shape, NAME)
