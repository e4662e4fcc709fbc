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
   (dense INT4 two weights a byte where the policy packs INT4; dCSR's
   gather-offset variant is not in that contest); under a byte budget
   (`budget_bytes`, `dmxgen export --weight-budget`), `assign` then moves
   auto's layers to formats that auto.layer_instructions (the M55 cost model)
   says run fewer instructions, the most instructions saved per byte added
   first, while the total fits: dcsr_gather (targets whose policy has
   `gather`), dense, dCSR;
4. csr / dcsr / dcsr_gather apply to ops with a kernel in that format and to
   tensors with at least `min_sparsity` zeros; the others stay dense
   (dcsr_gather asked for an op without that kernel gives dcsr where the op has a dCSR kernel).
   A policy without `gather` (the HLS target) refuses dcsr_gather outright.

The reason for every choice goes into manifest.json. This module sees a graph
only through `graph.ops`, `graph.weights(op)`, each op's `name`, `kind`
and `attrs`, and under a budget a convolution's output shape
(`graph.tensors[op.outputs[0]].shape`), so codecs still import numpy only.
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
    `budget_bytes`, when set, is the most the chosen weights may hold: `assign`
    refuses a choice over it, and spends what auto's fewest bytes leave of it on
    faster formats (rule 3). `gather`: the target has
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
COMPRESS = StoragePolicy("dcsr", 0.7)  # `dmxgen compress --select sparse` (it also stores rle)
SIZING = EXPORT  # compress.sizing (compress_to_size, `dmxgen shrink`) counts what `dmxgen export` stores


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
    kernels = _kernels(op_kind, policy)
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
            # the fewest bytes, as compress.sizing counts them; under a byte budget `assign` then spends what
            # is left on faster formats (_spend_budget, auto.layer_instructions; docs/formats-dcsr-gather.md)
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


def _kernels(op_kind: str, policy: StoragePolicy) -> tuple[str, ...]:
    """The formats `op_kind` has a kernel for on the policy's target (dcsr_gather only where it has `gather`)."""
    return tuple(k for k in SPARSE_KERNELS.get(op_kind, ("dense",)) if policy.gather or k != "dcsr_gather")


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
        raise PolicyError(f"the weights take {total:,} B in the chosen formats, over the budget of "
                          f"{policy.budget_bytes:,} B")
    if policy.budget_bytes is not None:
        _spend_budget(chosen, {op.name: _vectors(graph, op) for op in graph.ops if op.name in chosen}, policy)
    return chosen


def _vectors(graph, op) -> tuple[str, int, bool]:
    """(the op's kind, input vectors its weights are applied to: an FC's batches, a convolution's output
    pixels; whether it runs the many-vector kernels: a 1x1 convolution with stride 1 and no padding), for
    auto.layer_instructions."""
    a = op.attrs
    if op.kind != "conv2d":
        return op.kind, int(a.get("batches", 1)), False
    shape = graph.tensors[op.outputs[0]].shape
    direct = (tuple(graph.weights(op).data.shape[1:3]) == (1, 1) and tuple(a.get("stride", (1, 1))) == (1, 1)
              and not any(a.get("pad", (0, 0, 0, 0))))
    return op.kind, int(np.prod(shape[:-1])), direct


def _spend_budget(chosen: dict[str, Choice], layers: dict[str, tuple[str, int, bool]],
                  policy: StoragePolicy) -> None:
    """What a byte budget leaves after the fewest bytes goes to faster formats: auto's layers move, one step
    at a time, to the format with a kernel that auto.layer_instructions says runs fewer instructions, the
    step saving the most instructions per byte added first, while the total stays within the budget."""
    total = sum(c.nbytes for c in chosen.values())
    encoded: dict[tuple[str, str], Encoded | None] = {}

    def steps(name: str, c: Choice):
        kind, n, many = layers[name]
        now = auto.layer_instructions(c.enc, n, many)
        for f in _kernels(kind, policy) if now is not None else ():
            if f == c.fmt:
                continue
            if (name, f) not in encoded:
                try:
                    encoded[name, f] = encode(f, c.matrix)
                except CodecError:
                    encoded[name, f] = None
            enc = encoded[name, f]
            est = None if enc is None else auto.layer_instructions(enc, n, many)
            if est is not None and est < now:
                yield (now - est) / max(enc.nbytes - c.nbytes, 1), f, enc, now, est

    while True:
        best = None
        for name, c in chosen.items():
            if not c.reason.startswith("auto:") or c.weight_bits != 8:
                continue
            for gain, f, enc, now, est in steps(name, c):
                if total + enc.nbytes - c.nbytes <= policy.budget_bytes and (best is None or gain > best[0]):
                    best = (gain, name, f, enc, now, est)
        if best is None:
            return
        _, name, f, enc, now, est = best
        c = chosen[name]
        total += enc.nbytes - c.nbytes
        chosen[name] = Choice(f, enc, c.matrix, c.sparsity,
                              f"auto: {f}, {est:,.0f} instructions against {now:,.0f} in {c.fmt} (auto.py's cost "
                              f"model) for {enc.nbytes - c.nbytes:,} B more, within budget_bytes "
                              f"{policy.budget_bytes:,}", c.candidates)
