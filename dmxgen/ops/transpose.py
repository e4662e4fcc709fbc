"""transpose: permute the dims (TFLite TRANSPOSE, torch permute / transpose / channel shuffle).

Moves bytes only: output dim k is input dim perm[k]. Every target runs it as one strided
copy (graph/loops.py `transpose`), merged down to the 4 loops the copy kernels have, so a
rank-5 channel shuffle ([N, g, C/g, H*W] walks) still fits when neighbouring dims merge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import loops
from . import register
from ._spec import Ints, OpSpec

MAX_RANK = 6  # as TFLite's reference TRANSPOSE; the walk must still merge to loops.RANK loops


@dataclass(frozen=True)
class TransposeAttrs:
    perm: Ints  # output dim k is input dim perm[k]


@register
class Transpose(OpSpec):
    kind = "transpose"
    summary = "permute the dims (a strided copy)"
    Attrs = TransposeAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # codes are moved, whatever their width
    mve_dtypes = dtypes

    def check(self, op, ins, out):
        perm, rank = tuple(op.a.perm), len(ins[0].shape)
        if sorted(perm) != list(range(rank)):
            return f"perm {list(perm)} is not a permutation of the input's {rank} dims"
        if rank > MAX_RANK:
            return f"rank {rank} transposes are not supported (at most {MAX_RANK})"
        want = tuple(ins[0].shape[p] for p in perm)
        if out.shape != want:
            return f"output shape {list(out.shape)} should be {list(want)}"
        return None

    def reference(self, op, args, out_t):
        return np.transpose(args[0], tuple(op.a.perm))

    def kernel_params(self, graph, op):
        return {"copy": loops.transpose(graph.tensors[op.inputs[0]].shape, tuple(op.a.perm))}
