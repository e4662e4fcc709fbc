"""Pooling layers and calls -> one normalized description (type, kernel, stride, padding).

The tracer uses it to refuse what the integer kernels cannot do (dilation,
return_indices, divisor_override) at transform time; the exporter uses it to
fill the pooling op's attrs (ceil_mode and count_include_pad: `window_attrs`).
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import DmxError
from .aware import torch_nn

MAXPOOLS = (torch_nn.MaxPool1d, torch_nn.MaxPool2d)
AVGPOOLS = (torch_nn.AvgPool1d, torch_nn.AvgPool2d, torch_nn.AdaptiveAvgPool1d, torch_nn.AdaptiveAvgPool2d)
MAXPOOL_FUNCS = {F.max_pool1d, F.max_pool2d}
AVGPOOL_FUNCS = {F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, torch.mean}


def _sig_max(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return locals()


def _sig_avg(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    return locals()


def _sig_adaptive(input, output_size):
    return locals()


def _sig_mean(input, dim=None, keepdim=False, dtype=None):
    return locals()


def _sig_amax(input, dim=(), keepdim=False):
    return locals()


REDUCE_FUNCS = {torch.amax: "max", torch.amin: "min"}
REDUCE_METHODS = {"amax": "max", "amin": "min"}


def reduce_spec(node: fx.Node) -> dict:
    """torch.amax / amin (or the methods): {"type": "max" | "min", "dims", "keepdim"}."""
    typ = REDUCE_FUNCS.get(node.target) or REDUCE_METHODS[node.target]
    a = _sig_amax(*node.args, **node.kwargs)
    return {"type": typ, **_dims(node.name, f"a{typ}", a["dim"], a["keepdim"])}


def _dims(name: str, what: str, dims, keepdim) -> dict:
    if dims is None or dims in ((), []):
        raise DmxError(f"layer {name!r}: {what} over all dimensions is not supported; give the dims")
    dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
    return {"dims": tuple(int(d) for d in dims), "keepdim": bool(keepdim)}


def _pair(v, rank: int) -> tuple:
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v) if len(v) == rank else tuple(int(v[0]) for _ in range(rank))
    return tuple(int(v) for _ in range(rank))


def pool_spec(node: fx.Node, mods: dict) -> dict:
    """Normalized pooling parameters of a pooling module or call: type, rank, kernel, stride, padding, ..."""
    if node.op == "call_module":
        return module_pool_spec(str(node.target), mods[node.target])
    return _call_pool_spec(node)


def module_pool_spec(name: str, m: nn.Module) -> dict:
    """pool_spec of a pooling module; raises DmxError naming the layer for what is not supported."""
    rank = 1 if isinstance(m, (torch_nn.MaxPool1d, torch_nn.AvgPool1d, torch_nn.AdaptiveAvgPool1d)) else 2
    if isinstance(m, (torch_nn.AdaptiveAvgPool1d, torch_nn.AdaptiveAvgPool2d)):
        return {"type": "adaptive", "rank": rank, "output_size": m.output_size}
    a = {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
         "ceil_mode": m.ceil_mode, "count_include_pad": getattr(m, "count_include_pad", False),
         "dilation": getattr(m, "dilation", 1), "return_indices": getattr(m, "return_indices", False),
         "divisor_override": getattr(m, "divisor_override", None)}
    typ = "max" if isinstance(m, MAXPOOLS) else "avg"
    return _normalize(name, a, typ, rank)


def _call_pool_spec(node: fx.Node) -> dict:
    name, t = node.name, node.target
    if t in (F.max_pool1d, F.max_pool2d):
        a, typ = _sig_max(*node.args, **node.kwargs), "max"
    elif t in (F.avg_pool1d, F.avg_pool2d):
        a, typ = _sig_avg(*node.args, **node.kwargs), "avg"
    elif t in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d):
        a = _sig_adaptive(*node.args, **node.kwargs)
        return {"type": "adaptive", "rank": 1 if t is F.adaptive_avg_pool1d else 2,
                "output_size": a["output_size"]}
    else:  # mean
        a = _sig_mean(*node.args, **node.kwargs)
        return {"type": "mean", **_dims(name, "mean", a["dim"], a["keepdim"])}
    rank = 1 if t in (F.max_pool1d, F.avg_pool1d) else 2
    return _normalize(name, a, typ, rank)


def _normalize(name: str, a: dict, typ: str, rank: int) -> dict:
    k = _pair(a["kernel_size"], rank)
    s = _pair(a["stride"] if a["stride"] not in (None, [], ()) else a["kernel_size"], rank)
    p = _pair(a["padding"], rank)
    if a.get("return_indices") or _pair(a.get("dilation", 1), rank) != (1,) * rank:
        raise DmxError(f"layer {name!r}: pooling with return_indices or dilation is not supported")
    if typ == "avg" and a.get("divisor_override"):
        raise DmxError(f"layer {name!r}: avg pooling with divisor_override is not supported")
    return {"type": typ, "rank": rank, "kernel": k, "stride": s, "padding": p, "ceil_mode": bool(a.get("ceil_mode")),
            "count_include_pad": typ == "avg" and bool(a.get("count_include_pad")) and any(p)}


def window_attrs(spec: dict, in_sizes: tuple[int, ...], out_sizes: tuple[int, ...]) -> dict:
    """The pooling op's pad (top, left, bottom, right) and, for an average that counts the padding,
    its divisor: PyTorch's ceil_mode is extra bottom / right padding, exact as the kernels skip
    out-of-image taps, and left out of the "window" divisor as PyTorch leaves it out of its count."""
    k, s, p = spec["kernel"], spec["stride"], spec["padding"]
    if spec["rank"] == 1:
        k, s, p = (1,) + k, (1,) + s, (0,) + p
    extra = tuple(max(0, (o - 1) * st + kk - (i + 2 * pp)) for i, o, kk, st, pp in zip(in_sizes, out_sizes, k, s, p))
    attrs = {"filter": k, "stride": s, "pad": (p[0], p[1], p[0] + extra[0], p[1] + extra[1])}
    if spec.get("count_include_pad"):
        attrs.update(divisor="window", overhang=extra)
    return attrs
