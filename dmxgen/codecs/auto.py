"""Pick the smallest storage format that has a kernel for an op."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import FORMATS, CodecError, Encoded, encode
from .view import SPARSE_KERNELS, op_name


def candidates(op_kind: str, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    """Formats with a kernel for `op_kind`, restricted to `allowed`, dense first."""
    kind = op_name(op_kind)
    names = SPARSE_KERNELS[kind]
    if allowed is not None:
        allowed = set(allowed)
        unknown = allowed - set(FORMATS)
        if unknown:
            raise CodecError(f"unknown weight format(s) {sorted(unknown)}; known: {', '.join(FORMATS)}")
        names = tuple(n for n in names if n in allowed)
    if not names:
        raise CodecError(f"{kind}: none of the allowed formats {sorted(allowed or ())} has a kernel; "
                         f"available: {', '.join(SPARSE_KERNELS[kind])}")
    return names


def pick(op_kind: str, nbytes: Mapping[str, int], allowed: Iterable[str] | None = None) -> str:
    """The candidate with the fewest bytes; the earlier one (dense) on ties."""
    names = candidates(op_kind, allowed)
    return min(names, key=lambda n: (nbytes[n], names.index(n)))


def choose(op_kind: str, matrix: np.ndarray, allowed: Iterable[str] | None = None) -> Encoded:
    """Encode `matrix` in every candidate format and return the smallest encoding."""
    encs = {n: encode(n, matrix) for n in candidates(op_kind, allowed)}
    return encs[pick(op_kind, {n: e.nbytes for n, e in encs.items()}, allowed)]


def sizes(matrix: np.ndarray) -> dict[str, int]:
    """Flash bytes of `matrix` in all four formats."""
    return {n: encode(n, matrix).nbytes for n in FORMATS}
