"""mean / amax / amin over torch dims -> one pooling (or reduce_min) op of the integer graph.

Over the spatial dims of an NCHW (NCL) tensor the op pools the graph's NHWC tensor with a
window of the whole image. Over other dims, which must be neighbours, the tensor in torch's
order is viewed as [before, reduced, 1, after] (a reshape: the same bytes) and pooled with a
[reduced, 1] window, so the batch of the pool is `before` and its channels are `after`.
avg_pool2d rounds the window sum half away from zero on the codes, as the fake-quantized
mean does (QuantAvgPool), and max / min are exact on the input's grid: bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..compress.exportable import REDUCE_DIMS
from ..compress.layout import graph_shape

KINDS = {"mean": "avg_pool2d", "max": "max_pool2d", "min": "reduce_min"}
SPATIAL = {"nchw": (2, 3), "ncl": (2,)}


def is_global_pool(spec: dict, x) -> bool:
    """Is the reduction over exactly the spatial dims of a channels-first tensor?"""
    rank = len(x.tshape)
    return x.perm is None and tuple(sorted({d % rank for d in spec["dims"]})) == SPATIAL.get(x.layout)


def export_reduce(ex, node, name: str, x, spec: dict):
    """The Val of mean / amax / amin `spec` ({"type", "dims", "keepdim"}) of x, added to ex's graph."""
    out_t = ex.tshape(node)
    out_t = (1,) + out_t[1:]
    if is_global_pool(spec, x):
        _, h, w, _ = graph_shape(x.tshape, x.layout)
        src, window = x, (h, w)
        layout = x.layout if spec["keepdim"] else "plain"
    else:
        if x.perm is not None:
            ex.fail(name, "reducing a flattened NCHW tensor is not supported")
        if x.layout != "plain":
            x = ex.to_torch_order(name, x)
        rank = len(x.tshape)
        dims = sorted({d % rank for d in spec["dims"]})
        if dims[0] == 0 or dims != list(range(dims[0], dims[-1] + 1)):
            ex.fail(name, REDUCE_DIMS)
        before, reduced, after = (int(np.prod(x.tshape[a:b], dtype=np.int64)) for a, b in
                                  ((0, dims[0]), (dims[0], dims[-1] + 1), (dims[-1] + 1, rank)))
        src = ex._alias(f"{name}.rows", x, (before, reduced, 1, after), "plain")
        window, layout = (reduced, 1), "plain"
    n, _, _, c = graph_shape(src.tshape, src.layout)
    pooled = ex.new_tensor(f"{name}.pooled", (n, 1, 1, c), "plain", x.quant)
    kind = KINDS[spec["type"]]
    if kind == "reduce_min":
        attrs = {"axes": (1, 2)}
    else:
        fmt = x.quant.fmt
        attrs = {"filter": window, "stride": window, "pad": (0, 0, 0, 0), "activation": "NONE",
                 "act_min": fmt.qmin, "act_max": fmt.qmax}
    ex.add_op(name, kind, [src.name], pooled.name, attrs)
    return ex._alias(f"{name}.out", pooled, out_t, layout)
