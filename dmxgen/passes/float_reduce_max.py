"""DEQUANTIZE -> float REDUCE_MAX -> QUANTIZE  ==>  int8 REDUCE_MAX -> LUT.

MobileNetV2 exports (dcsr/mobilenetv2_*) take a global max in float in the
middle of the graph. Dequantization is monotonic (scale > 0), so the max of
the dequantized values is the dequantized max, and QUANTIZE(DEQUANTIZE(q)) is
a function of one int8 value: a 256-entry table, computed here with the
reference's own quantize/dequantize kernels so that it is exact. When the
table is the identity (same scale and zero point on both sides) no LUT op is
emitted at all.
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Op, Tensor
from ..ops import spec

_ALL_Q = np.arange(-128, 128, dtype=np.int8)


def _single_consumer(graph: Graph, name: str) -> Op | None:
    users = graph.consumers(name)
    if len(users) != 1 or name in graph.outputs:
        return None
    return users[0]


def _table(graph: Graph, deq: Op, quant: Op) -> np.ndarray:
    floats = spec("dequantize").reference(deq, [_ALL_Q], graph.tensors[deq.outputs[0]])
    quantized = spec("quantize").reference(quant, [np.asarray(floats, np.float32)], graph.tensors[quant.outputs[0]])
    return np.asarray(quantized).astype(np.int8)


def _unique(graph: Graph, base: str) -> str:
    name, k = base, 2
    while name in graph.tensors:
        name, k = f"{base}_{k}", k + 1
    return name


def lower_float_reduce_max(graph: Graph) -> Graph:
    """Rewrite every DEQUANTIZE -> REDUCE_MAX(float) -> QUANTIZE(float) chain."""
    ops = list(graph.ops)
    tensors = dict(graph.tensors)
    new = Graph(tensors, [], list(graph.inputs), list(graph.outputs), graph.source, dict(graph.entry_points))
    skip: set[int] = set()
    for i, op in enumerate(ops):
        if i in skip:
            continue
        chain = _match(graph, op)
        if chain is None:
            new.ops.append(op)
            continue
        deq, red, quant = chain
        skip.update(ops.index(o) for o in (red, quant))
        x = graph.tensors[deq.inputs[0]]
        y = quant.outputs[0]
        table = _table(graph, deq, quant)
        if np.array_equal(table, _ALL_Q):
            new.ops.append(Op(red.name, "reduce_max", [x.name], [y], {"axes": red.attrs["axes"]}))
            continue
        mid_name = _unique(new, red.outputs[0] + "/int8")
        red_out = graph.tensors[red.outputs[0]]
        new.add_tensor(Tensor(mid_name, red_out.shape, "int8", x.quant))
        new.ops.append(Op(red.name, "reduce_max", [x.name], [mid_name], {"axes": red.attrs["axes"]}))
        new.ops.append(Op(quant.name, "lut", [mid_name], [y], {"table": table}))
    # Drop the float intermediates the rewrite no longer uses.
    used = {n for o in new.ops for n in o.inputs + o.outputs} | set(new.inputs) | set(new.outputs)
    new.tensors = {n: t for n, t in tensors.items() if n in used or t.is_const}
    new.validate()
    return new


def _match(graph: Graph, op: Op) -> tuple[Op, Op, Op] | None:
    if op.kind != "dequantize" or graph.tensors[op.inputs[0]].dtype != "int8":
        return None
    red = _single_consumer(graph, op.outputs[0])
    if red is None or red.kind != "reduce_max" or graph.tensors[red.outputs[0]].dtype != "float32":
        return None
    quant = _single_consumer(graph, red.outputs[0])
    if quant is None or quant.kind != "quantize":  # float32 -> int8
        return None
    return op, red, quant
