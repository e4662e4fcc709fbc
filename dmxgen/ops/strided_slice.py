"""strided_slice: in[begin:end:step] per dim (TFLite STRIDED_SLICE, SLICE, SPLIT, SPLIT_V; torch slicing).

Moves bytes only. The frontends resolve TFLite's masks, negative indices and clamping (or
Python's slice rules) to plain indices, so the op holds one `range(begin, end, step)` per
input dim (negative steps walk backwards). Every target runs it as one strided copy
(graph/loops.py `strided_slice`). The output may drop or add dims of size 1 (TFLite's shrink
and new axes): the copy writes it contiguously either way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import loops
from . import register
from ._spec import Ints, OpSpec

MAX_RANK = 5  # as TFLite's STRIDED_SLICE; the walk must still merge to loops.RANK loops


@dataclass(frozen=True)
class StridedSliceAttrs:
    begin: Ints  # per input dim, a resolved index (the first element taken)
    end: Ints  # per input dim, one past the last (-1 with a negative step: down to index 0)
    step: Ints  # per input dim, nonzero


def slice_shape(begin, end, step) -> tuple[int, ...]:
    """The walked shape: len(range(b, e, s)) per dim."""
    return tuple(len(range(int(b), int(e), int(s))) for b, e, s in zip(begin, end, step))


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


@register
class StridedSlice(OpSpec):
    kind = "strided_slice"
    summary = "in[begin:end:step] per dim (a strided copy)"
    Attrs = StridedSliceAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # codes are moved, whatever their width
    mve_dtypes = dtypes

    def check(self, op, ins, out):
        a, shape = op.a, ins[0].shape
        rank = len(shape)
        if not len(a.begin) == len(a.end) == len(a.step) == rank:
            return f"begin, end and step need one value per input dim ({rank})"
        if rank > MAX_RANK:
            return f"rank {rank} slices are not supported (at most {MAX_RANK})"
        for d, (b, e, s) in enumerate(zip(a.begin, a.end, a.step)):
            if s == 0:
                return f"step of dim {d} is 0"
            lo, hi = (0, shape[d]) if s > 0 else (-1, shape[d] - 1)
            if not (0 <= b < shape[d] or len(range(b, e, s)) == 0) or not lo <= e <= hi:
                return f"dim {d}: range({b}, {e}, {s}) leaves the input's {shape[d]} elements"
        walked = slice_shape(a.begin, a.end, a.step)
        if _squeezed(walked) != _squeezed(out.shape) or loops.size(walked) != out.size:
            return f"output shape {list(out.shape)} should be {list(walked)} (up to dims of size 1)"
        q, qo = ins[0].quant, out.quant
        if q is not None and qo is not None and (q.s, q.zp) != (qo.s, qo.zp):
            return "the output is on a different grid than the input (a slice copies codes)"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        index = np.ix_(*[np.arange(b, e, s) for b, e, s in zip(a.begin, a.end, a.step)])
        return args[0][index].reshape(out_t.shape)

    def kernel_params(self, graph, op):
        a = op.a
        return {"copy": loops.strided_slice(graph.tensors[op.inputs[0]].shape, tuple(a.begin), tuple(a.end),
                                            tuple(a.step))}
