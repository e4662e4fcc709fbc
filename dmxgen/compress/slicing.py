"""Which PyTorch slicing calls the torch frontend exports (x[:, a:b], x[..., a:b:s], narrow,
chunk, split): trace.py gives them the kind "slice" and refuses other indexing here, at
transform time; frontends/torch_slices.py turns them into strided_slice ops.
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx

SLICE_FUNCTIONS = {torch.narrow, torch.chunk, torch.split, operator.getitem}
SLICE_METHODS = {"narrow", "chunk", "split"}
TUPLES = {torch.chunk, torch.split, "chunk", "split"}  # calls whose value is a tuple of pieces


def index_problem(node: fx.Node) -> str | None:
    """Why trace cannot take this getitem on an activation (None: it is a slice it can export)."""
    index = node.args[1]
    if isinstance(node.args[0], fx.Node) and node.args[0].target in TUPLES:
        return None if isinstance(index, int) else "a piece of chunk / split must be taken by an integer"
    for item in index if isinstance(index, tuple) else (index,):
        if item is Ellipsis:
            continue
        if not isinstance(item, slice):
            what = "an integer (it drops the dim; slice it, x[:, i:i + 1])" if isinstance(item, int) else \
                "None (a new axis)" if item is None else type(item).__name__
            return f"indexing with {what} is not supported, only slices and ..."
        bounds = (item.start, item.stop, item.step)
        if any(b is not None and not isinstance(b, int) for b in bounds):
            return "slice bounds must be integers fixed when the model is traced"
    return None
