"""CSR with 16-bit column indices: the usual sparse baseline (docs/formats.md, "CSR").

`nbytes` counts the arrays as stored (row_ptr has R+1 entries, 32-bit once
nnz no longer fits 16 bits); `meta['nbytes_paper']` is the 3*nnz + 2*R that
published comparison tables use.
"""
from __future__ import annotations

import numpy as np

from ._base import CodecError, Encoded, check_arrays, check_matrix

NAME = "csr"
ARRAYS = {"values": np.int8, "col_idx": np.uint16, "row_ptr": (np.uint16, np.uint32)}
MAX_COLS = 1 << 16  # col_idx is uint16
MAX_NNZ_16 = 0xFFFF  # row_ptr widens to uint32 above this


def encode(w: np.ndarray) -> Encoded:
    """Store the nonzeros of `w` row by row with their columns and row boundaries."""
    w = check_matrix(w, NAME)
    n_rows, n_cols = (int(x) for x in w.shape)
    if n_cols > MAX_COLS:
        raise CodecError(f"{NAME}: {n_cols} columns do not fit 16-bit column indices (max {MAX_COLS})")
    rows, cols = np.nonzero(w)
    nnz = int(rows.size)
    ptr_type = np.uint16 if nnz <= MAX_NNZ_16 else np.uint32
    row_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=row_ptr[1:])
    arrays = {
        "values": w[rows, cols].astype(np.int8),
        "col_idx": cols.astype(np.uint16),
        "row_ptr": row_ptr.astype(ptr_type),
    }
    ptr_bytes = np.dtype(ptr_type).itemsize
    nbytes = 3 * nnz + (n_rows + 1) * ptr_bytes
    meta = {"nnz": nnz, "nbytes_paper": 3 * nnz + 2 * n_rows}
    return Encoded(NAME, (n_rows, n_cols), arrays, nbytes, meta)


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the matrix from values, col_idx and row_ptr."""
    arrays = check_arrays(enc, NAME, ARRAYS)
    n_rows, n_cols = enc.shape
    values, col_idx = arrays["values"], arrays["col_idx"]
    row_ptr = arrays["row_ptr"].astype(np.int64)
    nnz = values.size
    if row_ptr.size != n_rows + 1 or row_ptr[0] != 0 or row_ptr[-1] != nnz or np.any(np.diff(row_ptr) < 0):
        raise CodecError(f"{NAME}: row_ptr is not a valid partition of {nnz} entries into {n_rows} rows")
    if col_idx.size != nnz:
        raise CodecError(f"{NAME}: {col_idx.size} column indices for {nnz} values")
    if nnz and int(col_idx.max()) >= n_cols:
        raise CodecError(f"{NAME}: column index {int(col_idx.max())} out of range for {n_cols} columns")
    rows = np.repeat(np.arange(n_rows), np.diff(row_ptr))
    out = np.zeros((n_rows, n_cols), dtype=np.int8)
    out[rows, col_idx] = values
    return out
