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


def run_op_outputs(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of one op, in op.outputs order.

    A kernel of a one-output kind gets the output Tensor and returns one array; a kernel of a kind
    whose spec declares outputs > 1 gets the tuple of output Tensors and returns one array each.
    """
    args = [values[n] if n else None for n in op.inputs]
    outs = [graph.tensors[n] for n in op.outputs]
    if op.spec.outputs == 1:
        results = [KERNELS[op.kind](op, args, outs[0])]
    else:
        results = KERNELS[op.kind](op, args, tuple(outs))
        if not isinstance(results, (tuple, list)) or len(results) != len(outs):
            raise DmxError(f"op {op.name!r} ({op.kind}): the reference kernel returned "
                           f"{len(results) if isinstance(results, (tuple, list)) else 'one'} values for "
                           f"{len(outs)} outputs")
    return [np.asarray(r).astype(t.dtype, copy=False).reshape(t.shape) for r, t in zip(results, outs)]


def run_op(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    """The op's (first) output."""
    return run_op_outputs(graph, op, values)[0]


def _set_inputs(graph: Graph, names: list[str], inputs, values: dict[str, np.ndarray]) -> None:
    """Checked, typed values of the tensors `names` from a list (in that order) or a name->array dict."""
    if not isinstance(inputs, dict):
        inputs = dict(zip(names, inputs))
    for name in names:
        t = graph.tensors[name]
        if name not in inputs:
            raise DmxError(f"no value given for graph input {name!r}")
        x = np.asarray(inputs[name])
        if x.size != t.size:
            raise DmxError(f"input {name!r} needs {t.size} values of shape {list(t.shape)}, got shape {list(x.shape)}")
        values[name] = x.astype(t.dtype).reshape(t.shape)


def _execute(graph: Graph, indices: list[int], values: dict[str, np.ndarray], keep: bool,
             live: set[str] = frozenset()) -> None:
    """Run ops `indices` (graph order) over `values`; unless keep, free what no later op reads
    (graph outputs and the tensors in `live` stay)."""
    last = {} if keep else graph.last_uses()
    for i in indices:
        op = graph.ops[i]
        for name, value in zip(op.outputs, run_op_outputs(graph, op, values)):
            values[name] = value
        for n in op.inputs:
            if n and last.get(n) == i and not graph.tensors[n].is_const and n not in live:
                values.pop(n, None)


def run(graph: Graph, inputs, keep: bool = False) -> dict[str, np.ndarray]:
    """Run the graph; `inputs` is a list (graph input order) or a name->array dict.

    Returns the graph outputs by name, or every tensor's value when keep=True.
    """
    values: dict[str, np.ndarray] = {n: t.data for n, t in graph.tensors.items() if t.is_const}
    _set_inputs(graph, graph.inputs, inputs, values)
    _execute(graph, list(range(len(graph.ops))), values, keep)
    if keep:
        return values
    return {n: values[n] for n in graph.outputs}


def run_entry(graph: Graph, name: str, inputs, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run one entry point (graph/entries.py), as the exported C runs dmx_model_<name>.

    `inputs` is a list (the entry's input order) or a name->array dict. `state` stands for the
    arena between calls: it holds the tensors earlier entries computed for later ones, and this
    call adds its own (pass the same dict to the entries in order; start with {}). Returns the
    entry's outputs by name.
    """
    entries = graph.entries
    if name not in entries:
        raise DmxError(f"the graph has no entry point {name!r} (it has {', '.join(map(repr, entries))})")
    from ..graph.entries import cross_entry

    entry, indices = entries[name], graph.entry_ops()[name]
    crossing = cross_entry(graph)
    values: dict[str, np.ndarray] = {n: t.data for n, t in graph.tensors.items() if t.is_const}
    _set_inputs(graph, entry.inputs, inputs, values)
    for t, (made, read) in crossing.items():
        if read == name and made != name:
            if t not in state:
                raise DmxError(f"entry {name!r} reads {t!r} from entry {made!r}; run {made!r} first")
            values[t] = state[t]
    _execute(graph, indices, values, keep=False, live=set(crossing))
    state.update({t: values[t] for t, (made, _) in crossing.items() if made == name})
    return {n: values[n] for n in entry.outputs}
