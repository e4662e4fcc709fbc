"""The one layout rule between PyTorch and the integer graph (activations are NHWC there).

A PyTorch NCHW tensor [N, C, H, W] is the graph tensor [N, H, W, C]; a Conv1d
NCL tensor [N, C, L] is [N, 1, L, C]; anything else ("plain") keeps its shape.
The torch frontend builds the graph with it and `Model.quantize_input` /
`output_codes` hand codes over in the graph's order with it.
"""
from __future__ import annotations

import torch

from .aware import torch_nn

LAYOUTS = ("plain", "nchw", "ncl")


def graph_shape(tshape: tuple, layout: str) -> tuple:
    """The graph tensor's shape for a torch tensor of shape `tshape` in `layout`."""
    if layout == "nchw":
        n, c, h, w = tshape
        return (n, h, w, c)
    if layout == "ncl":
        n, c, length = tshape
        return (n, 1, length, c)
    return tuple(tshape)


def to_graph_order(q: torch.Tensor, layout: str) -> torch.Tensor:
    """A torch tensor in `layout` permuted (not reshaped) into the graph's order."""
    if layout == "nchw":
        return q.permute(0, 2, 3, 1)
    if layout == "ncl":
        return q.permute(0, 2, 1).unsqueeze(1)
    return q


def layout_of_rank(rank: int, model) -> str:
    """4-D is NCHW; 3-D is NCL when the model has a Conv1d; else plain."""
    if rank == 4:
        return "nchw"
    if rank == 3 and any(isinstance(m.layer, torch_nn.Conv1d) for m in model.weighted_layers().values()):
        return "ncl"
    return "plain"
