"""mirror_pad: padding with the tensor's own values (TFLite MIRROR_PAD; torch reflect / replicate convs).

`reflect` mirrors about the edge element (TFLite REFLECT, torch "reflect"), `symmetric` mirrors
it too (TFLite SYMMETRIC), `edge` repeats it (torch "replicate"). Every target runs the same nine
strided copies (graph/loops.py walks): the input into the interior, then for each of the four
dims the rows before and after, copied from the output itself. A dim's rows span the dims before
it in full (already padded) and the dims after it over their interior, so the corners come out
as numpy's per-axis padding makes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..graph import loops
from . import register
from ._spec import OpSpec

# the mirrored row for a pad row at distance d (1, 2, ...) outside the edge, as an offset from the edge
# element inward; and how far each may pad given the dim's size n
_MIRROR = {"reflect": 0, "symmetric": -1}
_LIMIT = {"reflect": lambda n: n - 1, "symmetric": lambda n: n, "edge": lambda n: None}


@dataclass(frozen=True)
class MirrorPadAttrs:
    paddings: tuple[tuple[int, int], ...]  # (before, after) per axis
    mirror: Literal["reflect", "symmetric", "edge"]  # about the edge, about it included, or repeating it


def border_walks(in_shape: tuple[int, ...], paddings, mirror: str) -> dict[str, loops.Walk]:
    """before<k> and after<k> for each of the 4 dims: the output's pad rows of dim k from its own rows
    (src and dst both index the output); a dim with no padding on a side gets an empty walk."""
    rank = len(in_shape)
    lead = loops.RANK - rank
    pads = [(0, 0)] * lead + [tuple(int(v) for v in p) for p in paddings]
    shape = loops.padded_shape(in_shape, "mirror_pad")
    out = tuple(d + b + a for d, (b, a) in zip(shape, pads))
    st = loops.contiguous_strides(out)
    walks = {}
    for k in range(loops.RANK):
        b, a = pads[k]
        n = list(out[:k]) + [0] + list(shape[k + 1:])
        base = sum(pads[m][0] * st[m] for m in range(k + 1, loops.RANK))  # the interior of later dims
        for side, count in (("before", b), ("after", a)):
            n[k] = count
            if side == "before":  # row j (0 = outermost) mirrors the row at distance b - j inside the edge
                dst0, edge = 0, b
                src0 = edge if mirror == "edge" else edge + b + _MIRROR[mirror]
            else:  # row j at distance j + 1 past the last row, b + shape[k] - 1
                edge = b + shape[k] - 1
                dst0 = edge + 1
                src0 = edge if mirror == "edge" else edge - 1 - _MIRROR[mirror]
            src = list(st)
            src[k] = 0 if mirror == "edge" else -st[k]
            walks[f"{side}{k}"] = loops.Walk(tuple(n), (tuple(src), st), (base + src0 * st[k], base + dst0 * st[k]))
    return walks


@register
class MirrorPad(OpSpec):
    kind = "mirror_pad"
    summary = "padding with mirrored (or repeated) edge values"
    Attrs = MirrorPadAttrs
    targets = ("c", "hls", "tflite", "torch")

    def check(self, op, ins, out):
        a, shape = op.a, ins[0].shape
        if len(a.paddings) != len(shape):
            return f"{len(a.paddings)} paddings for a {len(shape)}-D input"
        if len(shape) > loops.RANK:
            return f"rank {len(shape)} inputs are not supported (at most {loops.RANK})"
        for axis, (n, (b, e)) in enumerate(zip(shape, a.paddings)):
            limit = _LIMIT[a.mirror](n)
            if min(b, e) < 0 or (limit is not None and max(b, e) > limit):
                return f"{a.mirror} padding ({b}, {e}) of dim {axis} (size {n}) must lie in [0, {limit}]"
        want = tuple(d + b + e for d, (b, e) in zip(shape, a.paddings))
        if want != out.shape:
            return f"output shape {list(out.shape)} should be {list(want)}"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        return np.pad(args[0], a.paddings, mode=a.mirror)

    def kernel_params(self, graph, op):
        shape = graph.tensors[op.inputs[0]].shape
        rank4 = loops.padded_shape(shape, "mirror_pad")
        before = tuple(int(p[0]) for p in op.a.paddings)
        out4 = loops.padded_shape(graph.tensors[op.outputs[0]].shape, "mirror_pad")
        interior = loops.pad(rank4, out4, (0,) * (loops.RANK - len(shape)) + before)
        return {"interior": interior, **border_walks(shape, op.a.paddings, op.a.mirror)}
