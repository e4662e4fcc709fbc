"""Many small graphs side by side in one graph, so that one export and one build check them all.

Compiling is the slow part of a target check (a host build, an HLS C simulation, a
firmware image), so tests merge their one-op graphs into a "zoo" with one input and
one output per case input and output, export it once and run every case's vectors in
one process.
"""
from __future__ import annotations

import dataclasses

from ..graph import Graph, Op


def merge(graphs: dict[str, Graph], source: str = "zoo.tflite") -> Graph:
    """Side by side: tensors and ops renamed '<case>/<name>', inputs and outputs concatenated."""
    g = Graph(source=source)
    for prefix, sub in graphs.items():
        name = {n: f"{prefix}/{n}" for n in sub.tensors}
        for n, t in sub.tensors.items():
            g.add_tensor(dataclasses.replace(t, name=name[n]))
        for op in sub.ops:
            g.ops.append(Op(f"{prefix}/{op.name}", op.kind, [name[i] if i else "" for i in op.inputs],
                            [name[o] for o in op.outputs], dict(op.attrs)))
        g.inputs += [name[n] for n in sub.inputs]
        g.outputs += [name[n] for n in sub.outputs]
    g.validate()
    return g
