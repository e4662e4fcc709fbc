"""The golden model: a numpy interpreter over the integer Graph.

Each op kind's kernel is its spec's `reference` (dmxgen/ops/<kind>.py);
KERNELS maps kind -> kernel, derived from the specs, and is what run_op calls
(tests replace an entry to check that a wrong kernel is noticed). Integer
arithmetic only on the int8 path (int64 where TFLite widens, float64 matmul
only where every partial sum is an integer below 2**53, so it is exact).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import DmxError
from ..graph import Graph, Op
from ..ops import SPECS

KERNELS: dict[str, Callable] = {kind: spec.reference for kind, spec in SPECS.items()}


def run_op(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    args = [values[n] if n else None for n in op.inputs]
    out_t = graph.tensors[op.outputs[0]]
    result = KERNELS[op.kind](op, args, out_t)
    return np.asarray(result).astype(out_t.dtype, copy=False).reshape(out_t.shape)


def run(graph: Graph, inputs, keep: bool = False) -> dict[str, np.ndarray]:
    """Run the graph; `inputs` is a list (graph input order) or a name->array dict.

    Returns the graph outputs by name, or every tensor's value when keep=True.
    """
    if not isinstance(inputs, dict):
        inputs = dict(zip(graph.inputs, inputs))
    values: dict[str, np.ndarray] = {n: t.data for n, t in graph.tensors.items() if t.is_const}
    for name in graph.inputs:
        t = graph.tensors[name]
        if name not in inputs:
            raise DmxError(f"no value given for graph input {name!r}")
        x = np.asarray(inputs[name])
        if x.size != t.size:
            raise DmxError(f"input {name!r} needs {t.size} values of shape {list(t.shape)}, got shape {list(x.shape)}")
        values[name] = x.astype(t.dtype).reshape(t.shape)
    last = {} if keep else graph.last_uses()
    for i, op in enumerate(graph.ops):
        values[op.outputs[0]] = run_op(graph, op, values)
        for n in op.inputs:  # free what no later op reads (outputs' last use is past the end)
            if n and last.get(n) == i and not graph.tensors[n].is_const:
                values.pop(n, None)
    if keep:
        return values
    return {n: values[n] for n in graph.outputs}

