"""Dense int8 storage: the baseline every sparse format has to beat.

R*C bytes, row-major (docs/formats.md, "dense"). INT4 layers are stored two
weights a byte by the C backend; `stored_nbytes` gives that size too.
"""
from __future__ import annotations

import numpy as np

from ._base import CodecError, Encoded, check_arrays, check_matrix

NAME = "dense"
ARRAYS = {"values": np.int8}


def encode(w: np.ndarray) -> Encoded:
    """Store `w` (2-D int8) as one row-major int8 array."""
    w = check_matrix(w, NAME)
    values = np.ascontiguousarray(w).reshape(-1).copy()
    return Encoded(NAME, (int(w.shape[0]), int(w.shape[1])), {"values": values}, int(values.size),
                   {"nnz": int(np.count_nonzero(values))})


def stored_nbytes(shape: tuple[int, int], weight_bits: int = 8) -> int:
    """Bytes of a dense [rows, cols] matrix: one a weight, or INT4 two a byte with each row
    starting on a byte (the C backend's packing, docs/exported-folder.md "INT4 weights")."""
    rows, cols = (int(x) for x in shape)
    if weight_bits == 8:
        return rows * cols
    if weight_bits == 4:
        return rows * ((cols + 1) // 2)
    raise CodecError(f"{NAME}: no storage for {weight_bits}-bit weights (8 or 4)")


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the matrix from `values`."""
    arrays = check_arrays(enc, NAME, ARRAYS)
    rows, cols = enc.shape
    if arrays["values"].size != rows * cols:
        raise CodecError(f"{NAME}: {arrays['values'].size} values for shape {enc.shape}")
    return arrays["values"].reshape(rows, cols).copy()
