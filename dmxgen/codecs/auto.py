"""Pick the storage format that has a kernel for an op (the fewest bytes), and the M55 cost model.

The cost model: bytes are each encoding's flash size; `instructions` is the M55 (MVE) single-vector
kernel's count for one input vector, from per-group and per-row costs measured on QEMU, and
`layer_instructions` a whole layer's on all its vectors (a direct 1x1 convolution through the
many-vector kernels), from least-squares fits to measured layers (docs/formats-dcsr-gather.md gives
the figures). Under a byte budget `policy.assign` spends what the fewest bytes leave on the formats
`layer_instructions` says run faster.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from . import FORMATS, CodecError, Encoded, dense, encode
from .view import SPARSE_KERNELS, op_name


VARIANTS = ("dcsr_gather",)  # never in the fewest-bytes contest: a byte budget may buy it (policy._spend_budget)


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


# A whole layer's instructions on the M55 (MVE), for `policy.assign`'s use of a byte budget: least-squares fits
# (within 7% for dense and dcsr_gather, 22% for dcsr) to the per-layer counts of sparse_l_90's and
# mobilenetv2_cifar10_sparse90's pruned 1x1 convolutions in all three formats (QEMU, 2026-12-02,
# docs/formats-dcsr-gather.md#cost-model). Dense: per vector, row and 16 columns (the 2-pixel x 4-row
# blocks), and per vector and row (requantization). A direct 1x1 convolution runs the sparse formats'
# many-vector kernels: per vector and group, per vector and row, per row (its header, read once per pass).
# Other layers run the single-vector kernel once per vector (GROUP_COST, ROW_COST).
DENSE_COST = (2.4, 6.2)
MANY_VECTOR_COST = {"dcsr": (7.7, 6.8, 186.0), "dcsr_gather": (4.7, 7.8, 111.0)}


def layer_instructions(enc: Encoded, vectors: int = 1, many: bool = False) -> float | None:
    """Estimated M55 instructions of a layer whose weights are `enc`, run on `vectors` input vectors (an FC's
    batches, a convolution's output pixels); `many`: a direct 1x1 convolution (the many-vector kernels).
    None for a format without a model (csr, rle)."""
    rows, cols = enc.shape
    if enc.format == "dense":
        chunk, row = DENSE_COST
        return vectors * rows * (chunk * -(-cols // 16) + row)
    if enc.format not in GROUP_COST:
        return None
    if many and vectors > 1:
        per_group, per_row, header = MANY_VECTOR_COST[enc.format]
        return vectors * (per_group * enc.arrays["group_minimums"].size + per_row * rows) + header * rows
    return vectors * instructions(enc)
