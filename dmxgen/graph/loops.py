"""Loop descriptors: the strided 4-D walks the C and HLS kernels run, described once for both.

A Walk is `n`, the loop counts (outermost first), and for each operand a start offset and one
element stride per loop: at loop index (i0, i1, ...) operand k addresses element
`offsets[k] + sum(i_j * strides[k][j])`. Broadcasting (stride 0 along a broadcast axis),
reduction (the output's strides, 0 on reduced axes), padding and concatenation (a copy into
a larger output at an offset), transposition (the input's strides permuted) and strided
slicing (a start offset and the input's strides times the steps) are only different values.
Kernels loop over RANK dims: `collapse` merges the dims every operand walks contiguously.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import DmxError

RANK = 4


def size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a row-major tensor of `shape`."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return tuple(strides[::-1])


def padded_shape(shape: tuple[int, ...], what: str, rank: int = RANK) -> tuple[int, ...]:
    """`shape` with leading 1s up to `rank` dims; DmxError naming `what` when it has more."""
    if len(shape) > rank:
        raise DmxError(f"{what}: tensors of rank {len(shape)} are not supported (at most {rank})")
    return (1,) * (rank - len(shape)) + tuple(int(d) for d in shape)


def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of `shape` when iterating `out_shape` (0 along broadcast dims)."""
    full = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return tuple(0 if d == 1 and o != 1 else s for d, o, s in zip(full, out_shape, contiguous_strides(full)))


def reduction_strides(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """For each input dim, the stride of the output element it folds into (0 on reduced axes)."""
    axes = tuple(a % len(in_shape) for a in axes) if in_shape else ()
    kept = tuple(1 if i in axes else d for i, d in enumerate(in_shape))
    return tuple(0 if i in axes else s for i, s in enumerate(contiguous_strides(kept)))


@dataclass(frozen=True)
class Walk:
    """Loop counts and, per operand (an order each constructor names), offset and strides."""

    n: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "n", tuple(int(d) for d in self.n))
        object.__setattr__(self, "strides", tuple(tuple(int(s) for s in st) for st in self.strides))
        object.__setattr__(self, "offsets", tuple(int(o) for o in self.offsets) or (0,) * len(self.strides))
        if any(len(st) != len(self.n) for st in self.strides) or len(self.offsets) != len(self.strides):
            raise ValueError(f"walk {self}: every operand needs one stride per loop and one offset")

    def collapse(self, what: str, rank: int = RANK) -> Walk:
        """Drop loops of count 1, merge neighbours every operand walks contiguously, pad to `rank`.

        Raises DmxError naming `what` when more than `rank` loops remain.
        """
        if 0 in self.n:  # nothing to walk: no loop runs, no row start is formed
            return replace(self, n=(0,) * rank, strides=tuple((0,) * rank for _ in self.strides),
                           offsets=(0,) * len(self.strides))
        dims = list(self.n) or [1]
        sts = [list(s) or [0] for s in self.strides]
        keep = [i for i, d in enumerate(dims) if d != 1] or [len(dims) - 1]  # one loop even for one element
        n = [dims[i] for i in keep]
        sts = [[s[i] for i in keep] for s in sts]
        i = len(n) - 2
        while i >= 0:
            if all(s[i] == s[i + 1] * n[i + 1] for s in sts):
                n[i] *= n[i + 1]
                for s in sts:
                    s[i] = s[i + 1]
                    del s[i + 1]
                del n[i + 1]
            i -= 1
        if len(n) > rank:
            raise DmxError(f"{what}: needs {len(n)} loop dimensions after merging, the kernels handle {rank}")
        pad = rank - len(n)
        return replace(self, n=(1,) * pad + tuple(n), strides=tuple((0,) * pad + tuple(s) for s in sts))


# -- elementwise and reductions: operands are read (or, for reductions, the output) -----------------
def broadcast(out_shape: tuple[int, ...], *in_shapes: tuple[int, ...]) -> Walk:
    """Every output element in order; one operand per input, read through its broadcast strides."""
    return Walk(out_shape, tuple(broadcast_strides(s, out_shape) for s in in_shapes))


def reduction(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> Walk:
    """Every input element in order; the one operand is the output element it folds into."""
    return Walk(in_shape, (reduction_strides(in_shape, axes),))


# -- copies: operands (src, dst); the strided-copy kernels run these --------------------------------
def copy(shape: tuple[int, ...]) -> Walk:
    """A contiguous copy (a reshape that cannot alias its input)."""
    st = contiguous_strides(shape)
    return Walk(shape, (st, st))


def fill(shape: tuple[int, ...]) -> Walk:
    """One source element (stride 0) into every element of a contiguous output."""
    return Walk(shape, ((0,) * len(shape), contiguous_strides(shape)))


def pad(in_shape: tuple[int, ...], out_shape: tuple[int, ...], before: tuple[int, ...]) -> Walk:
    """The input into the output at `before` elements from each dim's start (the rest is filled)."""
    dst = contiguous_strides(out_shape)
    return Walk(in_shape, (contiguous_strides(in_shape), dst),
                (0, sum(int(b) * s for b, s in zip(before, dst))))


def concat(in_shapes: list[tuple[int, ...]], axis: int) -> list[Walk]:
    """One copy per input, each into the output after the inputs before it along `axis`."""
    rank = len(in_shapes[0])
    axis %= rank
    out_shape = list(in_shapes[0])
    out_shape[axis] = sum(int(s[axis]) for s in in_shapes)
    dst = contiguous_strides(tuple(out_shape))
    walks, at = [], 0
    for s in in_shapes:
        walks.append(Walk(s, (contiguous_strides(s), dst), (0, at * dst[axis])))
        at += int(s[axis])
    return walks


def transpose(in_shape: tuple[int, ...], perm: tuple[int, ...]) -> Walk:
    """Output dim k is input dim perm[k]: the output in order, the input through permuted strides."""
    src = contiguous_strides(in_shape)
    out_shape = tuple(in_shape[p] for p in perm)
    return Walk(out_shape, (tuple(src[p] for p in perm), contiguous_strides(out_shape)))


def strided_slice(in_shape: tuple[int, ...], begin: tuple[int, ...], end: tuple[int, ...],
                  step: tuple[int, ...]) -> Walk:
    """in[begin:end:step] per dim (begin and end already resolved to indices, as Python's slice.indices
    gives them; negative steps walk backwards)."""
    src = contiguous_strides(in_shape)
    n = tuple(len(range(b, e, s)) for b, e, s in zip(begin, end, step))
    return Walk(n, (tuple(st * s for st, s in zip(src, step)), contiguous_strides(n)),
                (sum(int(b) * st for b, st in zip(begin, src)) if all(n) else 0, 0))
