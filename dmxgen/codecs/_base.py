"""What every codec shares: the encoded container, the error type, input checks.

Kept apart from `__init__` so the format modules can import it without a cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class CodecError(ValueError):
    """A matrix (or a set of arrays) that a format cannot represent.

    The message starts with the format name and names the problem, so a caller
    can wrap it in its own user-facing error unchanged.
    """


@dataclass(eq=False)
class Encoded:
    """One weight matrix in one storage format.

    `arrays` holds exactly the arrays a kernel reads, in the order and with the
    dtypes of docs/formats.md; `nbytes` is their flash size by the formula of
    that document. `meta` carries derived numbers a kernel template may want
    (group count, inserted zeros, ...); decoders never read it.
    Arrays and meta entries are also reachable as attributes (`enc.values`).
    """

    format: str
    shape: tuple[int, int]
    arrays: dict[str, np.ndarray]
    nbytes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def decode(self) -> np.ndarray:
        """The int8 matrix rebuilt from `arrays` alone."""
        from . import decode  # late: the registry imports this module

        return decode(self)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails; go through __dict__ so that
        # copy/pickle (which probe attributes before __init__) do not recurse.
        for bag in ("arrays", "meta"):
            d = self.__dict__.get(bag)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__} ({self.__dict__.get('format')}) has no attribute {name!r}")

    def __repr__(self) -> str:
        arrs = ", ".join(f"{k}:{v.dtype}[{v.size}]" for k, v in self.arrays.items())
        return f"Encoded({self.format}, shape={self.shape}, nbytes={self.nbytes}, {arrs})"


def check_matrix(w: Any, fmt: str) -> np.ndarray:
    """Return `w` if it is a non-empty 2-D int8 ndarray, else raise CodecError."""
    if not isinstance(w, np.ndarray):
        raise CodecError(f"{fmt}: expected a numpy int8 matrix, got {type(w).__name__}")
    if w.ndim != 2:
        raise CodecError(f"{fmt}: expected a 2-D matrix, got {w.ndim}-D array of shape {tuple(w.shape)}")
    if w.dtype != np.int8:
        raise CodecError(f"{fmt}: expected dtype int8, got {w.dtype} (quantize the weights first)")
    if 0 in w.shape:
        raise CodecError(f"{fmt}: matrix of shape {tuple(w.shape)} has an empty dimension")
    return w


def check_arrays(enc: Encoded, fmt: str, spec: dict[str, type]) -> dict[str, np.ndarray]:
    """Check that `enc` is a `fmt` encoding with exactly the arrays of `spec` (name -> dtype)."""
    if enc.format != fmt:
        raise CodecError(f"{fmt}: cannot decode a {enc.format!r} encoding")
    if len(enc.shape) != 2 or min(enc.shape) < 1:
        raise CodecError(f"{fmt}: bad shape {enc.shape}")
    names = list(enc.arrays)
    if names != list(spec):
        raise CodecError(f"{fmt}: expected arrays {list(spec)}, got {names}")
    for name, dtype in spec.items():
        a = enc.arrays[name]
        allowed = dtype if isinstance(dtype, tuple) else (dtype,)
        if a.ndim != 1 or a.dtype not in [np.dtype(t) for t in allowed]:
            raise CodecError(f"{fmt}: array {name!r} must be 1-D {'/'.join(np.dtype(t).name for t in allowed)}, "
                             f"got {a.ndim}-D {a.dtype}")
    return enc.arrays


def row_positions(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row counts and each entry's index within its row, for row-sorted entries."""
    counts = np.bincount(rows, minlength=n_rows).astype(np.int64)
    starts = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    pos = np.arange(rows.size, dtype=np.int64) - starts[rows]
    return counts, pos


def scatter_last_wins(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                      values: np.ndarray) -> np.ndarray:
    """Write entries in order into a zero matrix; a repeated position keeps the later value.

    That is what a kernel writing lanes in order does; numpy does not promise
    it for repeated fancy-index assignment, so keep only the last occurrences.
    """
    out = np.zeros(shape, dtype=np.int8)
    flat = rows.astype(np.int64) * shape[1] + cols.astype(np.int64)
    rev = flat[::-1]
    uniq, first_in_rev = np.unique(rev, return_index=True)
    out.reshape(-1)[uniq] = values[::-1][first_in_rev]
    return out
