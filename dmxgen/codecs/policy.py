"""The storage policy: which format each weight tensor is stored in, decided once.

One `StoragePolicy` (the format asked for, the minimum sparsity for csr/dcsr,
per-layer overrides, whether dense INT4 is packed, an optional byte budget)
and one pass, `assign(graph, policy)`, that gives every weight tensor its
`Choice`; the C and HLS backends print the choice, `dmxgen inspect --formats`
reports it. The rules, in order, for one tensor:

1. a per-layer override names the format (dense, csr, dcsr or auto);
2. under `auto`, an encoding `dmxgen compress` stored in the model file is
   kept when its format has a kernel for the op;
3. `auto` takes the format with a kernel that stores the fewest bytes
   (dense INT4 two weights a byte where the policy packs INT4), except that a
   dCSR pick on a fully connected or conv2d layer becomes dCSR's gather-offset variant
   (dcsr_gather) when auto.py's cost model says it runs fewer instructions and
   its bytes stay below dense and CSR (targets whose policy has `gather`);
4. csr / dcsr / dcsr_gather apply to ops with a kernel in that format and to
   tensors with at least `min_sparsity` zeros; the others stay dense
   (dcsr_gather asked for an op without that kernel gives dcsr where the op has a dCSR kernel).
   A policy without `gather` (the HLS target) refuses dcsr_gather outright.

The reason for every choice goes into manifest.json. This module sees a graph
only through `graph.ops`, `graph.weights(op)` and each op's `name`, `kind`
and `attrs`, so codecs still import numpy only.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import CodecError, Encoded, auto, dense, encode
from .view import SPARSE_KERNELS, as_matrix

FORMATS = ("dense", "csr", "dcsr", "dcsr_gather", "auto")  # what `--format` may ask a backend for
SPARSE_OPS = tuple(kind for kind, kernels in SPARSE_KERNELS.items() if len(kernels) > 1)  # csr/dcsr kernels
PACKS_INT4 = ("fully_connected", "conv2d")  # their dense kernels read INT4 two weights a byte


class PolicyError(CodecError):
    """A policy that cannot be applied; the message names the layer when there is one.
    Backends re-raise it as their user-facing error."""


@dataclass(frozen=True)
class StoragePolicy:
    """The options that decide every weight tensor's storage format.

    `pack_int4` says how the target stores a dense INT4 layer: two weights a
    byte (the C backend) or one int8 a weight (the HLS kernels read int8).
    `budget_bytes`, when set, is the most the chosen weights may hold; today
    `assign` refuses a choice over it (after taking back dcsr_gather's extra
    bytes), later a size-targeted choice fills it. `gather`: the target has
    kernels for dcsr_gather (the C backend; the HLS kernels read dCSR only).
    """

    fmt: str = "auto"  # dense | csr | dcsr | auto
    min_sparsity: float = 0.5
    overrides: Mapping[str, str] = field(default_factory=dict)  # layer name -> format
    pack_int4: bool = True
    budget_bytes: int | None = None
    gather: bool = True

    def __post_init__(self) -> None:
        for where, fmt in [("", self.fmt)] + [(f" for layer {k!r}", v) for k, v in self.overrides.items()]:
            if fmt not in FORMATS:
                raise PolicyError(f"unknown weight format {fmt!r}{where}; choose one of {', '.join(FORMATS)}")
            if fmt == "dcsr_gather" and not self.gather:
                raise PolicyError(f"weight format dcsr_gather{where}: this target has no kernel for dCSR's "
                                  "gather-offset variant (the HLS kernels read dense, csr and dcsr); use dcsr")
        m = self.min_sparsity
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m <= 1.0:
            raise PolicyError(f"min_sparsity {m!r} must be between 0 and 1")
        b = self.budget_bytes
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0):
            raise PolicyError(f"budget_bytes {b!r} must be a byte count >= 0")


# Each entry point's defaults, documented here once (they differ, and exports depend on them):
EXPORT = StoragePolicy()  # the class defaults (auto, 0.5): `dmxgen export`, the C backend, compress.sizing
HLS = StoragePolicy("dense", 0.0, pack_int4=False, gather=False)  # backends.hls.write_hls called from Python
COMPRESS = StoragePolicy("dcsr", 0.7)
SIZING = EXPORT  # compress.sizing (compress_to_size, `dmxgen shrink`) counts what `dmxgen export` stores  # `dmxgen compress --select sparse` (it also stores rle)


@dataclass
class Choice:
    """One weight tensor as stored: the format, its arrays and why."""

    fmt: str
    enc: Encoded
    matrix: np.ndarray  # the 2-D view the kernel walks
    sparsity: float
    reason: str
    candidates: dict[str, int] = field(default_factory=dict)  # auto: stored bytes of each format compared
    weight_bits: int = 8  # 4: dense values stored two a byte

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold as the target stores them."""
        return dense.stored_nbytes(self.enc.shape, self.weight_bits) if self.fmt == "dense" else self.enc.nbytes


def choose(policy: StoragePolicy, layer: str, op_kind: str, weight: np.ndarray, weight_bits: int = 8,
           stored: Encoded | None = None) -> Choice:
    """The storage of one layer's weight tensor under `policy` (rules in the module docstring).

    `weight_bits` is the op's (4 for INT4 layers); `stored` the encoding the
    model file carries for the tensor, if any.
    """
    matrix = as_matrix(op_kind, weight)
    sparsity = 1.0 - np.count_nonzero(matrix) / matrix.size
    kernels = tuple(k for k in SPARSE_KERNELS.get(op_kind, ("dense",)) if policy.gather or k != "dcsr_gather")
    bits = weight_bits if policy.pack_int4 and op_kind in PACKS_INT4 else 8
    fmt = policy.overrides.get(layer, policy.fmt)
    overridden = layer in policy.overrides

    def made(name: str, reason: str, enc: Encoded | None = None, candidates: dict | None = None) -> Choice:
        enc = encode(name, matrix) if enc is None else enc
        return Choice(name, enc, matrix, sparsity, reason, candidates or {}, bits if name == "dense" else 8)

    if overridden and fmt not in kernels and fmt != "auto":
        raise PolicyError(f"layer {layer!r} ({op_kind}): no {fmt} kernel for {op_kind}; "
                          f"its weights can be {', '.join(kernels)}")
    try:
        if fmt == "auto":
            note = ""
            if stored is not None and not overridden:
                _check_stored(layer, op_kind, stored, matrix)
                if stored.format in kernels:
                    kept = f"kept: the model file stores these weights as {stored.format} (dmxgen compress)"
                    return made(stored.format, kept, stored)
                note = f" (the {stored.format} stored in the model file has no {op_kind} kernel)"
            encs = auto.encodings(op_kind, matrix)
            sizes = auto.stored_sizes(encs, bits)
            name = auto.pick(op_kind, sizes)
            packing = " (dense INT4: two weights a byte)" if bits == 4 else ""
            why = "auto: fewest bytes among " + "/".join(encs) + packing + note
            # the single-vector variant (auto.py's cost model) only under a byte budget, which its extra bytes
            # must fit (assign takes it back when they do not): without one, auto stores the fewest bytes, as
            # compress.sizing counts them (docs/formats-dcsr-gather.md)
            if name == "dcsr" and "dcsr_gather" in kernels and policy.budget_bytes is not None:
                encs["dcsr_gather"] = encode("dcsr_gather", matrix)
                sizes["dcsr_gather"] = encs["dcsr_gather"].nbytes
            if auto.prefer_faster(name, encs, sizes) != name:
                name, why = "dcsr_gather", _gather_reason(encs, sizes) + note
            return made(name, why, encs[name], sizes)
        if fmt == "dense":
            return made("dense", "requested for this layer" if overridden else "requested")
        if overridden:
            return made(fmt, "requested for this layer")
        if fmt == "dcsr_gather" and fmt not in kernels and "dcsr" in kernels:
            fmt, note = "dcsr", f" (no dcsr_gather kernel for {op_kind}: dcsr)"
        else:
            note = ""
        if fmt not in kernels:
            return made("dense", f"no {fmt} kernel for {op_kind}")
        if sparsity < policy.min_sparsity:
            return made("dense", f"{sparsity:.1%} zeros is below --min-sparsity {policy.min_sparsity:g}")
        return made(fmt, "requested" + note)
    except PolicyError:
        raise
    except CodecError as e:
        raise PolicyError(f"layer {layer!r} ({op_kind}): cannot store weights as {fmt}: {e}") from None


def _gather_reason(encs: dict[str, Encoded], sizes: dict[str, int]) -> str:
    """Why auto took dcsr_gather over the smaller dcsr: the cost model's figures and the bytes."""
    fast, slow = auto.instructions(encs["dcsr_gather"]), auto.instructions(encs["dcsr"])
    others = "/".join(n for n in encs if n not in ("dcsr", "dcsr_gather"))
    return (f"auto: dcsr_gather, fewer instructions than dcsr ({fast:,.0f} vs {slow:,.0f} per vector, auto.py's "
            f"cost model) for {sizes['dcsr_gather'] - sizes['dcsr']:,} B more, still below {others}")


def _check_stored(layer: str, op_kind: str, stored: Encoded, matrix: np.ndarray) -> None:
    """A stored encoding is kept only if it holds the very weights the reference computes with."""
    if tuple(stored.shape) != matrix.shape or not np.array_equal(stored.decode(), matrix):
        raise PolicyError(f"layer {layer!r} ({op_kind}): the {stored.format} weights stored in the model file "
                          "differ from its dense weights; rewrite the file with `dmxgen compress`")


def assign(graph, policy: StoragePolicy) -> dict[str, Choice]:
    """The pass: op name -> Choice for every op of `graph` with a weight tensor."""
    chosen: dict[str, Choice] = {}
    for op in graph.ops:
        w = graph.weights(op)
        if w is None:
            continue
        chosen[op.name] = choose(policy, op.name, op.kind, w.data, op.attrs.get("weight_bits", 8),
                                 getattr(w, "encoded", None))
    unknown = sorted(set(policy.overrides) - set(chosen))
    if unknown:
        raise PolicyError(f"format override for {unknown[0]!r}: no layer of that name has weights; "
                          f"layers with weights: {', '.join(chosen) or 'none'}")
    total = sum(c.nbytes for c in chosen.values())
    if policy.budget_bytes is not None and total > policy.budget_bytes:
        total = _undo_gather(chosen, policy)
    if policy.budget_bytes is not None and total > policy.budget_bytes:
        raise PolicyError(f"the weights take {total:,} B in the chosen formats, over the budget of "
                          f"{policy.budget_bytes:,} B")
    return chosen


def _undo_gather(chosen: dict[str, Choice], policy: StoragePolicy) -> int:
    """Over budget: auto's dcsr_gather choices go back to dCSR (fewer bytes, slower); the new total."""
    for name, c in chosen.items():
        if c.fmt == "dcsr_gather" and c.reason.startswith("auto:"):
            chosen[name] = Choice("dcsr", encode("dcsr", c.matrix), c.matrix, c.sparsity,
                                  "auto: dcsr, fewest bytes (dcsr_gather, faster, would be over budget_bytes "
                                  f"{policy.budget_bytes:,})", c.candidates)
    return sum(c.nbytes for c in chosen.values())
