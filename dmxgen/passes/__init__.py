"""Graph-to-graph lowering passes, run before a backend prints the graph.

Each pass takes a Graph and returns a new one (the input is not modified)
that the reference computes to the bit like the original, but that a backend
can print with fewer kinds of kernels (for the C backend: no float arithmetic
in the middle of the graph).
"""
from __future__ import annotations

from ..graph import Graph
from .float_reduce_max import lower_float_reduce_max

PASSES = (lower_float_reduce_max,)

__all__ = ["PASSES", "lower", "lower_float_reduce_max"]


def lower(graph: Graph, applied: list[str] | None = None) -> Graph:
    """Apply every pass in order; append the names of those that changed the graph to `applied`."""
    for p in PASSES:
        new = p(graph)
        if applied is not None and [id(o) for o in new.ops] != [id(o) for o in graph.ops]:
            applied.append(p.__name__)
        graph = new
    return graph
