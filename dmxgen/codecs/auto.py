"""Pick the storage format that has a kernel for an op: the fewest bytes, or dCSR's faster variant.

The cost model (`instructions`, `prefer_faster`): bytes are each encoding's flash size;
instructions are the M55 (MVE) kernel's count for one input vector, from per-group and
per-row costs measured on QEMU (docs/formats-dcsr-gather.md gives the figures). Only one
trade is offered, on fully_connected and conv2d layers: dcsr -> dcsr_gather, taken when the
variant runs fewer instructions and its bytes stay below every format other than dCSR (dense,
CSR: the variant never stores more than the next format auto would fall back to). A convolution
runs the product once per pixel (a direct 1x1 four pixels per pass over a row), so the per-vector
figures order the two formats for it as for an FC layer.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import FORMATS, CodecError, Encoded, dense, encode
from .view import SPARSE_KERNELS, op_name


VARIANTS = ("dcsr_gather",)  # never in the fewest-bytes contest: `prefer_faster` may swap a dcsr pick for it


def candidates(op_kind: str, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    """Formats with a kernel for `op_kind`, restricted to `allowed` (default: all but VARIANTS), dense first."""
    kind = op_name(op_kind)
    names = SPARSE_KERNELS[kind] if allowed is not None else tuple(n for n in SPARSE_KERNELS[kind]
                                                                    if n not in VARIANTS)
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
    """Flash bytes of `matrix` (int8 weights) in every format of the registry."""
    return {n: encode(n, matrix).nbytes for n in FORMATS}


# Instructions per 16-lane group and per row of a single-vector kernel on the M55 (MVE): the gather
# variant's loop is 8 instructions (its disassembly); dCSR's decode costs ~22 more per group, the
# difference measured with tools/bench_mve.py on sparse_l_90's FC (docs/formats-dcsr-gather.md).
GROUP_COST = {"dcsr": 30.0, "dcsr_gather": 8.0}
ROW_COST = 30.0  # slope division, bias, the partial group's predicate and the scalar requantization


def instructions(enc: Encoded) -> float | None:
    """Estimated M55 instructions of one matrix-vector product in `enc`'s format (None: no model)."""
    if enc.format not in GROUP_COST:
        return None
    return GROUP_COST[enc.format] * enc.arrays["group_minimums"].size + ROW_COST * enc.shape[0]


def prefer_faster(picked: str, encs: Mapping[str, Encoded], sizes: Mapping[str, int]) -> str:
    """`picked` (the fewest bytes), or dcsr_gather in its place when that is a dCSR pick, the variant
    is in `encs`, runs fewer instructions and stores fewer bytes than every non-dCSR candidate."""
    if picked != "dcsr" or "dcsr_gather" not in encs:
        return picked
    fit = all(sizes["dcsr_gather"] < b for n, b in sizes.items() if n not in ("dcsr", "dcsr_gather"))
    faster = instructions(encs["dcsr_gather"]) < instructions(encs["dcsr"])
    return "dcsr_gather" if fit and faster else picked
