"""Pick the storage format that has a kernel for an op and stores the fewest bytes."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import FORMATS, CodecError, Encoded, dense, encode
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
    """The candidate (of those in `nbytes`) with the fewest bytes; the earlier one (dense) on ties."""
    names = [n for n in candidates(op_kind, allowed) if n in nbytes]
    return min(names, key=lambda n: (nbytes[n], names.index(n)))


def encodings(op_kind: str, matrix: np.ndarray, allowed: Iterable[str] | None = None) -> dict[str, Encoded]:
    """`matrix` in every candidate format that can hold it (CSR cannot past 65,536 columns)."""
    encs, errors = {}, []
    for name in candidates(op_kind, allowed):
        try:
            encs[name] = encode(name, matrix)
        except CodecError as e:
            errors.append(e)
    if not encs:
        raise errors[0]
    return encs


def stored_sizes(encs: Mapping[str, Encoded], weight_bits: int = 8) -> dict[str, int]:
    """The bytes each encoding puts in flash: dense INT4 packs two weights a byte, while
    CSR and dCSR keep int8 values whatever the weights' bit width."""
    return {n: dense.stored_nbytes(e.shape, weight_bits) if n == "dense" else e.nbytes for n, e in encs.items()}


def choose(op_kind: str, matrix: np.ndarray, allowed: Iterable[str] | None = None, weight_bits: int = 8) -> Encoded:
    """The encoding of `matrix` that stores the fewest bytes among the candidate formats."""
    encs = encodings(op_kind, matrix, allowed)
    return encs[pick(op_kind, stored_sizes(encs, weight_bits), allowed)]


def sizes(matrix: np.ndarray) -> dict[str, int]:
    """Flash bytes of `matrix` (int8 weights) in all four formats."""
    return {n: encode(n, matrix).nbytes for n in FORMATS}
