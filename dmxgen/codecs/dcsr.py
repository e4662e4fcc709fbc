"""dCSR, delta-compressed CSR for 16-lane 8-bit SIMD gathers (docs/formats.md, normative).

Each row's entries are cut into groups of 16 lanes; lane j of a group reads
column base + j*slope + delta_j, with the slope recomputed from the row's
entry count, an 8-bit delta split into a 4-bit nibble and sparse extension
masks, and an int8 per-group base step. Rows whose numbers do not fit get
explicit zero entries until they do.

The encoder works on all rows at once with numpy; only rejected rows go
through the per-row retry loop of step 6, which is rare on real weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._base import CodecError, Encoded, check_arrays, check_matrix, row_positions, scatter_last_wins

NAME = "dcsr"
ARRAYS = {
    "values": np.int8,
    "delta_indices": np.uint8,
    "bitmaps": np.uint8,
    "bitmasks": np.uint16,
    "group_minimums": np.int8,
    "row_offsets": np.int16,
    "nnze": np.uint32,
}
LANES = 16
MIN_LO, MIN_HI = -127, 126  # accepted stored minimums (step 5)
MAX_SPAN = 255  # d_j + j*s must fit an unsigned byte (step 5)
_LANE = np.arange(LANES, dtype=np.int64)


def slope(n: np.ndarray | int, n_cols: int) -> np.ndarray | int:
    """Step 1: s = floor((C + floor(n/2)) / n), 0 for an empty row (works on arrays)."""
    if np.isscalar(n):
        return (n_cols + n // 2) // n if n else 0
    n = np.asarray(n, dtype=np.int64)
    return np.where(n > 0, (n_cols + n // 2) // np.maximum(n, 1), 0)


@dataclass
class _Layout:
    """Steps 1-5 for row-sorted entries: the true (un-narrowed) integers and the rejected rows."""

    counts: np.ndarray  # n_r per row
    lane: np.ndarray  # j per entry
    gid: np.ndarray  # global group per entry
    delta: np.ndarray  # d_j per entry
    stored: np.ndarray  # step-4 minimum per group
    bad_rows: np.ndarray  # rows failing step 5


def _layout(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> _Layout:
    counts, pos = row_positions(rows, n_rows)
    s_row = slope(counts, n_cols)
    lane, k = pos & (LANES - 1), pos >> 4
    gstart = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum((counts + LANES - 1) // LANES, out=gstart[1:])
    gid = gstart[rows] + k
    s = s_row[rows]
    adjusted = cols - lane * s  # step 2
    first = np.flatnonzero(lane == 0)  # one per group, in group order
    if first.size:
        base = np.minimum.reduceat(adjusted, first)  # empty lanes copy the min: no effect
    else:
        base = np.zeros(0, dtype=np.int64)
    delta = adjusted - base[gid]  # step 3
    grow, gk = rows[first], k[first]
    prev = np.concatenate(([0], base[:-1]))
    stored = np.where(gk == 0, base, base - prev - LANES * s_row[grow])  # step 4
    # Step 5 on the true integers. An empty lane has d = 0, so only 15*s can
    # overflow there; a full last group is covered by lane 15's own check.
    bad = np.zeros(n_rows, dtype=bool)
    bad[grow[(stored < MIN_LO) | (stored > MIN_HI)]] = True
    bad[rows[delta + lane * s > MAX_SPAN]] = True
    bad |= (counts % LANES != 0) & ((LANES - 1) * s_row > MAX_SPAN)
    return _Layout(counts, lane, gid, delta, stored, np.flatnonzero(bad))


def _row_accepted(cols: list[int], n_cols: int) -> bool:
    s = slope(len(cols), n_cols)
    if (LANES - 1) * s > MAX_SPAN:  # lane 15 always fails: skip the full check
        return False
    c = np.asarray(cols, dtype=np.int64)
    return _layout(np.zeros(c.size, dtype=np.int64), c, 1, n_cols).bad_rows.size == 0


def _pad_row(cols: list[int], vals: list[int], n_cols: int, row: int) -> tuple[list[int], list[int]]:
    """Step 6: insert explicit zeros into one row until steps 1-5 accept it."""
    cols, vals = list(cols), list(vals)
    gaps = [b - a for a, b in zip([0, *cols], [*cols, n_cols], strict=True)]
    # Once every gap is <= 1 the row is dense and accepted, so this bounds the loop.
    limit = 2 * n_cols + LANES
    while not _row_accepted(cols, n_cols):
        if len(cols) > limit:
            raise CodecError(f"{NAME}: row {row} did not converge after {len(cols)} entries")
        k = 0 if len(cols) == 1 else gaps.index(max(gaps))  # first largest gap
        gap = gaps[k]
        half = (gap + 1) // 2
        col = cols[k] - half if k < len(cols) else n_cols - half
        cols.insert(k, col)
        vals.insert(k, 0)
        gaps[k:k + 1] = [gap - half, half]  # the split gap, before and after the new column
    return cols, vals


def encode(w: np.ndarray) -> Encoded:
    """Encode `w` (2-D int8) by steps 1-7 of the dCSR section."""
    w = check_matrix(w, NAME)
    vals, lay, nnz = entries(w, NAME)
    return _pack(vals, lay, *w.shape, nnz)


def entries(w: np.ndarray, fmt: str = NAME) -> tuple[np.ndarray, _Layout, int]:
    """Steps 1-6 on a checked matrix: the stored values (inserted zeros included), their layout
    and the true nonzero count. The gather variant (dcsr_gather.py) stores the same entries."""
    n_rows, n_cols = (int(x) for x in w.shape)
    rows, cols = np.nonzero(w)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    vals = w[rows, cols].astype(np.int8)
    nnz = int(rows.size)
    lay = _layout(rows, cols, n_rows, n_cols)
    if lay.bad_rows.size:
        rows, cols, vals = _pad_rows(rows, cols, vals, lay, n_rows, n_cols)
        lay = _layout(rows, cols, n_rows, n_cols)
        if lay.bad_rows.size:  # _pad_row only returns accepted rows
            raise AssertionError(f"{fmt}: rows {lay.bad_rows[:5]} still rejected after padding")
    return vals, lay, nnz


def _pad_rows(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, lay: _Layout, n_rows: int,
              n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace the entries of every rejected row by its padded entries, keeping row-major order."""
    starts = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(lay.counts, out=starts[1:])
    bad = np.zeros(n_rows, dtype=bool)
    bad[lay.bad_rows] = True
    keep = ~bad[rows]
    parts_r, parts_c, parts_v = [rows[keep]], [cols[keep]], [vals[keep]]
    for r in lay.bad_rows:
        sl = slice(starts[r], starts[r + 1])
        c, v = _pad_row(cols[sl].tolist(), vals[sl].tolist(), n_cols, int(r))
        parts_r.append(np.full(len(c), r, dtype=np.int64))
        parts_c.append(np.asarray(c, dtype=np.int64))
        parts_v.append(np.asarray(v, dtype=np.int8))
    rows, cols, vals = (np.concatenate(p) for p in (parts_r, parts_c, parts_v))
    order = np.argsort(rows, kind="stable")  # padded rows keep their own entry order
    return rows[order], cols[order], vals[order]


def _pack(vals: np.ndarray, lay: _Layout, n_rows: int, n_cols: int, nnz: int) -> Encoded:
    """Step 7 and the array layout of the table in formats.md."""
    n_values = int(vals.size)
    n_groups = int(lay.stored.size)
    half = (n_groups + 1) // 2
    grid = np.zeros((2 * half, LANES), dtype=np.int64)  # empty lanes and the odd tail stay 0
    grid[lay.gid, lay.lane] = lay.delta
    nibbles = grid & 0xF
    delta_indices = ((nibbles[0::2] << 4) | nibbles[1::2]).astype(np.uint8).reshape(-1)
    # masks[g, b]: bit j set when lane j of group g has delta bit 4+b set.
    ext = (grid[:, None, :] >> (4 + np.arange(4))[None, :, None]) & 1
    masks = (ext << _LANE).sum(axis=2)
    maps = ((masks != 0) << np.arange(4)).sum(axis=1)
    bitmaps = ((maps[0::2] << 4) | maps[1::2]).astype(np.uint8)
    bitmasks = masks[:n_groups][masks[:n_groups] != 0].astype(np.uint16)  # group-major, b ascending
    offsets = lay.counts - n_values // n_rows
    if offsets.size and (offsets.min() < np.iinfo(np.int16).min or offsets.max() > np.iinfo(np.int16).max):
        raise CodecError(f"{NAME}: row entry counts spread too far for int16 row_offsets "
                         f"({int(offsets.min())}..{int(offsets.max())}); too many columns ({n_cols})")
    arrays = {
        "values": vals.astype(np.int8),
        "delta_indices": delta_indices,
        "bitmaps": bitmaps,
        "bitmasks": bitmasks,
        "group_minimums": lay.stored.astype(np.int8),
        "row_offsets": offsets.astype(np.int16),
        "nnze": np.array([n_values], dtype=np.uint32),
    }
    n_masks = int(bitmasks.size)
    nbytes = n_values + 17 * half + n_groups + 2 * n_masks + 2 * n_rows + 4
    meta = {"nnz": nnz, "inserted_zeros": n_values - nnz, "groups": n_groups, "masks": n_masks}
    return Encoded(NAME, (n_rows, n_cols), arrays, nbytes, meta)


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the matrix as a kernel would: "Decoding row r" in formats.md, from the arrays only."""
    a = check_arrays(enc, NAME, ARRAYS)
    counts, grow, gk, s, base = group_bases(a, enc.shape, NAME)
    n_groups = int(grow.size)
    half = (n_groups + 1) // 2
    if a["delta_indices"].size != LANES * half or a["bitmaps"].size != half:
        raise CodecError(f"{NAME}: array lengths do not match {n_groups} groups")
    nib = _unpair(a["delta_indices"].reshape(half, LANES))[:n_groups]
    maps = _unpair(a["bitmaps"].reshape(half, 1))[:n_groups, 0]
    has = (maps[:, None] >> np.arange(4)) & 1  # [g, b]: a mask follows for bit b
    if int(has.sum()) != a["bitmasks"].size:
        raise CodecError(f"{NAME}: bitmaps announce {int(has.sum())} masks, {a['bitmasks'].size} stored")
    ptr = np.cumsum(has.reshape(-1)).reshape(has.shape) - 1  # masks consumed in order
    mask = np.zeros(has.shape, dtype=np.int64)
    mask[has == 1] = a["bitmasks"][ptr[has == 1]]
    ext = (((mask[:, :, None] >> _LANE) & 1) << (4 + np.arange(4))[None, :, None]).sum(axis=1)
    offset = (_LANE * s[:, None] + nib + ext) % 256
    real = _LANE[None, :] < (counts[grow] - LANES * gk)[:, None]
    return scatter_groups(a["values"], counts, grow, gk, base[:, None] + offset, real, enc.shape, NAME)


def group_bases(a: dict[str, np.ndarray], shape: tuple[int, int], fmt: str):
    """From nnze, row_offsets and group_minimums alone: the row counts n_r, and per group its row,
    its index k within the row, the row's slope and the base pointer P of "Decoding row r"."""
    n_rows, n_cols = shape
    if a["nnze"].size != 1:
        raise CodecError(f"{fmt}: nnze must hold one number, has {a['nnze'].size}")
    n_values = int(a["nnze"][0])
    if a["row_offsets"].size != n_rows:
        raise CodecError(f"{fmt}: {a['row_offsets'].size} row_offsets for {n_rows} rows")
    counts = n_values // n_rows + a["row_offsets"].astype(np.int64)
    if np.any(counts < 0) or counts.sum() != n_values or a["values"].size != n_values:
        raise CodecError(f"{fmt}: row counts from nnze/row_offsets do not match {a['values'].size} values")
    groups_per_row = (counts + LANES - 1) // LANES
    n_groups = int(groups_per_row.sum())
    if a["group_minimums"].size != n_groups:
        raise CodecError(f"{fmt}: {a['group_minimums'].size} group_minimums for {n_groups} groups")
    grow = np.repeat(np.arange(n_rows), groups_per_row)
    gfirst = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(groups_per_row, out=gfirst[1:])
    gk = np.arange(n_groups) - gfirst[grow]
    s = slope(counts, n_cols)[grow]
    # Base pointer chain: P = min[g] for a row's first group, then P += 16*s + min[g].
    step = a["group_minimums"].astype(np.int64) + np.where(gk == 0, 0, LANES * s)
    chain = np.cumsum(step)
    base = chain - (chain - step)[gfirst[grow]]
    return counts, grow, gk, s, base


def scatter_groups(values: np.ndarray, counts: np.ndarray, grow: np.ndarray, gk: np.ndarray, col: np.ndarray,
                   real: np.ndarray, shape: tuple[int, int], fmt: str) -> np.ndarray:
    """The matrix from each group's lane columns `col` [G, 16] (lanes where `real`), values in row order."""
    n_rows, n_cols = shape
    vstart = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=vstart[1:])
    vidx = (vstart[grow] + LANES * gk)[:, None] + _LANE
    rows, cols, vidx = np.broadcast_to(grow[:, None], real.shape)[real], col[real], vidx[real]
    if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
        raise CodecError(f"{fmt}: decoded column {int(cols.min())}..{int(cols.max())} outside 0..{n_cols - 1}")
    return scatter_last_wins((n_rows, n_cols), rows, cols, values[vidx])


def _unpair(packed: np.ndarray) -> np.ndarray:
    """Split nibble-paired rows: row p yields group 2p (high nibble) then 2p+1 (low)."""
    out = np.empty((2 * packed.shape[0], packed.shape[1]), dtype=np.int64)
    out[0::2] = packed >> 4
    out[1::2] = packed & 0xF
    return out
