"""Shapes to the fixed 4-D strided loop nests the elementwise and reduction kernels run."""
from __future__ import annotations

import numpy as np

from ..errors import DmxError

RANK = 4


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Element strides of `shape` when iterating `out_shape` (0 along broadcast dims)."""
    full = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    st = contiguous_strides(full)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(full, out_shape, st)]


def collapse(shape: tuple[int, ...], strides: list[list[int]], what: str) -> tuple[list[int], list[list[int]]]:
    """Merge neighbouring dims every stride list walks contiguously; pad to RANK dims.

    Raises DmxError when more than RANK dims remain (the kernels loop over 4).
    """
    dims = [int(d) for d in shape] or [1]
    sts = [list(s) or [0] for s in strides]
    keep = [i for i, d in enumerate(dims) if d != 1] or [len(dims) - 1]
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
    if len(n) > RANK:
        raise DmxError(f"{what}: needs {len(n)} loop dimensions after merging, the C kernels handle {RANK}")
    pad = RANK - len(n)
    return [1] * pad + n, [[0] * pad + s for s in sts]


def reduction_strides(in_shape: tuple[int, ...], axes: tuple[int, ...]) -> list[int]:
    """For each input dim, the stride of the output element it adds into (0 on reduced axes)."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(in_shape))
    st = contiguous_strides(kept)
    return [0 if i in axes else s for i, s in enumerate(st)]


def size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
