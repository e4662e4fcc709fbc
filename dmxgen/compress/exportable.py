"""What `Model.transform` can already tell will not export, refused there with the exporter's own words.

What forward() returns is checked on the traced graph; the layout a tensor will
have in the integer graph (NCHW after a Conv2d, NCL after a Conv1d, plain after
a Linear or a flatten) follows from the layers alone, so a Linear over a
channels-first tensor and a `mean` over a non-spatial dim need no example
input. What depends on sizes is checked on the first calibration batch
(`Model.calibrating`), still long before `dmxgen.save`.
"""
from __future__ import annotations

import torch
import torch.fx as fx

from ..errors import DmxError
from .aware import torch_nn
from .multi_io import check_outputs
from .pools import pool_spec, reduce_spec

MEAN_SPATIAL_ONLY = "mean is supported over the spatial dims only"
REDUCE_DIMS = "mean, amax and amin are supported over neighbouring dims, not over the batch dim"
POOL_NEEDS_CHANNELS_FIRST = "pooling needs an NCHW or NCL input"
_FLATTENS = {torch.flatten, "flatten"}


def linear_layout_message(layout: str) -> str:
    return f"Linear over the last dim of a {layout.upper()} tensor is not supported; flatten it first"


def check_exportable(gm: fx.GraphModule, kind: dict, layer_name, source: str) -> None:
    """Raise the DmxError export would raise, for what the structure alone decides."""
    nodes = list(gm.graph.nodes)
    check_outputs(gm, kind, source)  # tensors, tuples, lists or dicts of them (compress/multi_io.py)
    mods = dict(gm.named_modules())
    layout: dict = {}  # node -> nchw | ncl | plain | unknown
    for node in nodes:
        k = kind.get(node)
        if k in (None, "shape", "output"):
            continue
        ins = [layout[a] for a in node.all_input_nodes if a in layout]
        here = ins[0] if ins else "unknown"
        if k == "weighted":
            m = mods[node.target]
            if isinstance(m, torch_nn.Linear):
                if here in ("nchw", "ncl"):
                    raise DmxError(f"layer {layer_name(node)!r}: {linear_layout_message(here)}")
                here = "plain"
            else:
                here = "ncl" if isinstance(m, torch_nn.Conv1d) else "nchw"
        elif k == "reshape":
            here = "plain" if node.op == "call_module" or node.target in _FLATTENS else "unknown"
        elif k == "permute":  # the exporter moves a permuted tensor back to channels first where needed
            here = "unknown"
        elif k in ("recurrent", "recurrent_last"):  # an LSTM's / GRU's output: [N, T, hidden] or [N, hidden]
            here = "plain"
        elif k in ("avgpool", "maxpool") and here == "plain" and not is_reduction(node, k, mods):
            raise DmxError(f"layer {layer_name(node)!r}: {POOL_NEEDS_CHANNELS_FIRST}")
        elif is_reduction(node, k, mods):  # mean / amax / amin over dims
            here = reduced_layout(layer_name(node), reduce_spec(node) if k == "reduce" else pool_spec(node, mods), here)
        layout[node] = here


def is_reduction(node: fx.Node, kind: str, mods: dict) -> bool:
    """amax / amin, or a mean over dims (not a window pool)."""
    return kind == "reduce" or (kind == "avgpool" and node.op != "call_module" and pool_spec(node, mods)["type"] == "mean")


def reduced_layout(name: str, spec: dict, layout: str) -> str:
    """The layout after mean / amax / amin over spec's dims; refuses the batch dim and dims that are not
    neighbours (the exporter pools the graph tensor viewed as [before, reduced, 1, after])."""
    rank = {"nchw": 4, "ncl": 3}.get(layout)
    dims = spec["dims"]
    if rank is not None:
        dims = tuple(d % rank for d in dims)
        if set(dims) == set(range(2, rank)):  # spatial: a global pool in the graph's own layout
            return layout if spec["keepdim"] else "plain"
    same_sign = all(d >= 0 for d in dims) or all(d < 0 for d in dims)
    ordered = sorted(set(dims))
    if 0 in dims or (same_sign and ordered != list(range(ordered[0], ordered[-1] + 1))):
        raise DmxError(f"layer {name!r}: {REDUCE_DIMS}")
    return "unknown" if layout == "unknown" and spec["keepdim"] else "plain"

