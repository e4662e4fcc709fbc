"""The integer graph's outputs named as forward() returns them (compress/multi_io.py).

The exporter names every tensor after the layer that computes it; a tuple or
list return is then renamed `output0`, `output1`, ... and a dict return by its
keys, so that model.h's `out_<name>` pointers, the .npz test vectors and
`dmxgen verify` read as the PyTorch code does. A graph tensor that already
has such a name (a layer called `output0`) moves aside to a free one.
"""
from __future__ import annotations

from ..errors import DmxError
from ..graph import Graph


def name_outputs(graph: Graph, vals: dict, names: list[str | None]) -> None:
    """Rename graph.outputs[i] to names[i] (None: keep it), in the graph and in the exporter's Vals.

    Also refuses what only the graph shows: an output that is an input passed through (Dropout,
    Identity) and two outputs that are one tensor."""
    for i, out in enumerate(graph.outputs):
        if out in graph.inputs:
            raise DmxError(f"{graph.source}: {_which(names, i)} is the input {out!r} passed through; an output "
                           "needs a layer between it and the inputs")
        if out in graph.outputs[:i]:
            j = graph.outputs.index(out)
            raise DmxError(f"{graph.source}: {_which(names, i)} is the same tensor as {_which(names, j)}; "
                           "return each tensor once")
    for i, new in enumerate(names):
        old = graph.outputs[i]
        if new is None or new == old:
            continue
        if new in graph.tensors:
            _rename(graph, vals, new, _free(graph, new))
        _rename(graph, vals, graph.outputs[i], new)


def _which(names: list[str | None], i: int) -> str:
    return "the output" if names[i] is None else f"output {names[i]!r}"


def _free(graph: Graph, base: str) -> str:
    k = 1
    while f"{base}_{k}" in graph.tensors:
        k += 1
    return f"{base}_{k}"


def _rename(graph: Graph, vals: dict, old: str, new: str) -> None:
    graph.tensors[old].name = new
    graph.tensors = {t.name: t for t in graph.tensors.values()}  # same order, new key
    for op in graph.ops:
        op.inputs = [new if n == old else n for n in op.inputs]
        op.outputs = [new if n == old else n for n in op.outputs]
    graph.inputs = [new if n == old else n for n in graph.inputs]
    graph.outputs = [new if n == old else n for n in graph.outputs]
    for v in vals.values():
        if v.name == old:
            v.name = new
