"""Dense int8 storage: the baseline every sparse format has to beat.

R*C bytes, row-major (docs/formats.md, "dense").
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


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the matrix from `values`."""
    arrays = check_arrays(enc, NAME, ARRAYS)
    rows, cols = enc.shape
    if arrays["values"].size != rows * cols:
        raise CodecError(f"{NAME}: {arrays['values'].size} values for shape {enc.shape}")
    return arrays["values"].reshape(rows, cols).copy()
