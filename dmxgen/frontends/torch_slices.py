"""PyTorch slicing (x[:, a:b], x[..., a:b:s], narrow, chunk, split) as one range per torch dim,
then per graph dim: the strided_slice op's attrs.

A tensor's graph order differs from torch's only by its layout (compress/layout.py): an NCHW
tensor is NHWC in the graph, an NCL one [N, 1, L, C]; so slicing torch's channel dim is a slice
of the graph's last dim, no transpose. chunk and split give tuples: their pieces are taken by
the getitem that follows, each a range of the split dim (the piece sizes come from the traced
shapes, so torch's own rule for uneven chunks decides them).
"""
from __future__ import annotations

import operator

import torch.fx as fx

from ..compress.slicing import TUPLES
from ..errors import DmxError

# graph dim i holds torch dim GRAPH_DIMS[layout][i] (None: the graph's added dim of size 1)
GRAPH_DIMS = {"nchw": (0, 2, 3, 1), "ncl": (0, None, 2, 1)}

Range = tuple[int, int, int]  # start, stop, step of one dim


def _arg(node: fx.Node, i: int, name: str, default=None):
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _shape(meta) -> tuple[int, ...]:
    return tuple(int(d) for d in meta.shape)


def torch_ranges(node: fx.Node, in_shape: tuple[int, ...]) -> list[Range]:
    """One (start, stop, step) per torch dim for a getitem / narrow node (or a piece of chunk / split)."""
    rank = len(in_shape)
    ranges = [(0, d, 1) for d in in_shape]
    src = node.args[0]
    if node.target is operator.getitem and isinstance(src, fx.Node) and src.target in TUPLES:
        dim = int(_arg(src, 2, "dim", 0)) % rank
        pieces = [_shape(m)[dim] for m in src.meta["tensor_meta"]]
        k = int(node.args[1]) % len(pieces)
        start = sum(pieces[:k])
        ranges[dim] = (start, start + pieces[k], 1)
        return ranges
    if node.target is operator.getitem:
        items = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        if Ellipsis in items:
            at = items.index(Ellipsis)
            items = items[:at] + (slice(None),) * (rank - len(items) + 1) + items[at + 1:]
        for d, item in enumerate(items):
            if isinstance(item, int):  # one index (an LSTM output's step, compress/recurrent.py): the dim goes
                ranges[d] = (item % in_shape[d], item % in_shape[d] + 1, 1)
            else:
                ranges[d] = item.indices(in_shape[d])
        return ranges
    dim = int(_arg(node, 1, "dim")) % rank  # narrow(dim, start, length)
    start, length = int(_arg(node, 2, "start")), int(_arg(node, 3, "length"))
    start += in_shape[dim] if start < 0 else 0
    ranges[dim] = (start, start + length, 1)
    return ranges


def slices_batch(node: fx.Node, rank: int) -> bool:
    """Does the call cut the batch dim? (The graph has batch 1, the model runs on any batch, so this
    is read from the call, not from the traced sizes.)"""
    src = node.args[0]
    if node.target is operator.getitem and isinstance(src, fx.Node) and src.target in TUPLES:
        return int(_arg(src, 2, "dim", 0)) % rank == 0
    if node.target is operator.getitem:
        first = node.args[1][0] if isinstance(node.args[1], tuple) else node.args[1]
        return first is not Ellipsis and (first.start or 0, first.stop, first.step or 1) != (0, None, 1)
    return int(_arg(node, 1, "dim")) % rank == 0


def graph_attrs(name: str, node: fx.Node, in_shape: tuple[int, ...], layout: str) -> dict:
    """The strided_slice attrs in the graph's order; the batch dim must stay whole."""
    if slices_batch(node, len(in_shape)):
        raise DmxError(f"layer {name!r}: slicing the batch dim is not supported")
    ranges = torch_ranges(node, in_shape)
    order = GRAPH_DIMS.get(layout, tuple(range(len(ranges))))
    picked = [(0, 1, 1) if d is None else ranges[d] for d in order]
    return {"begin": tuple(r[0] for r in picked), "end": tuple(r[1] for r in picked),
            "step": tuple(r[2] for r in picked)}
