"""The torch frontend's per-channel layers -> `affine` and `prelu` ops (compress/affine.py's layers).

Both ops index their per-channel constants along the graph's last dim (affine) or the flat tensor
(prelu's repeating alpha), so the torch channel dim is moved there first: an NCHW / NCL tensor
already holds its channels last, a plain [N, C, H, W] one is made NHWC as a conv's input is, and a
flattened NCHW tensor reorders the constants instead of the data.
"""
from __future__ import annotations

import numpy as np
import torch

from ..compress.layout import to_graph_order


def _channels_last(exp, name: str, x, channel_dim: int):
    """x with the torch dim `channel_dim` (1 or -1) as the graph's last dim."""
    rank = len(x.tshape)
    if channel_dim == -1 and x.layout != "plain":
        return exp.to_torch_order(name, x)
    if channel_dim == 1 and x.layout == "plain" and x.perm is None and rank in (3, 4):
        return exp.channels_first(name, x, "nchw" if rank == 4 else "ncl")
    if channel_dim == 1 and x.layout == "plain" and rank > 2:
        exp.fail(name, f"a per-channel layer over dim 1 of a rank-{rank} tensor is not supported")
    return x


def _graph_order(values: np.ndarray, x) -> np.ndarray:
    """Per-channel values (one per graph last-dim entry, torch's order) in the graph's order: a
    flattened NCHW tensor's features are permuted."""
    return values if x.perm is None else values[x.perm]


def export_affine(exp, node, name: str, mod, x):
    x = _channels_last(exp, name, x, mod.channel_dim)
    s_in, zp_in = x.quant.qparams()
    _, zp_out = mod.out_quant.qparams()
    p = mod.integer_params()
    attrs = {"input_offset": -zp_in, "output_offset": zp_out,
             **{key: _graph_order(p[key], x) for key in ("weight", "bias", "multiplier", "shift")},
             "activation": p["activation"], "act_min": p["act_min"], "act_max": p["act_max"]}
    out = exp.new_tensor(name, exp.tshape(node), x.layout, mod.out_quant, x.perm)
    exp.add_op(name, "affine", [x.name], out.name, attrs)
    return out


def export_prelu(exp, node, name: str, mod, x):
    p = mod.integer_params()
    codes = p["codes"]
    if codes.size > 1:
        x = _channels_last(exp, name, x, 1)
    tshape = (1,) + tuple(x.tshape[1:])
    shape = (1, -1) + (1,) * (len(tshape) - 2) if codes.size > 1 else (1,) * len(tshape)
    full = torch.from_numpy(np.broadcast_to(codes.reshape(shape), tshape).copy())
    flat = to_graph_order(full, x.layout).reshape(-1).numpy()
    if x.perm is not None:
        flat = flat[x.perm]
    attrs = {key: p[key] for key in ("input_offset", "alpha_offset", "output_offset", "multiplier_identity",
                                     "shift_identity", "multiplier_alpha", "shift_alpha")}
    attrs["alpha"] = shortest_period(flat)
    out = exp.new_tensor(name, exp.tshape(node), x.layout, mod.out_quant, x.perm)
    exp.add_op(name, "prelu", [x.name], out.name, attrs)
    return out


def shortest_period(flat: np.ndarray) -> np.ndarray:
    """The shortest prefix of `flat` that repeats to it (its length divides flat's)."""
    n = flat.size
    for period in range(1, n + 1):
        if n % period == 0 and np.array_equal(np.tile(flat[:period], n // period), flat):
            return flat[:period].copy()
    return flat
