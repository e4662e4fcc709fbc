"""Named entry points: pieces of one graph that a caller runs one after another.

An early-exit model is one graph whose backbone stages and exit heads are
separate calls (issue 13): "stage1" computes the features and the first exit
head, "stage2" continues from the features. Every entry runs over the same
static arena, so the rule that makes this work is:

- Entries run in their declared order. An op of an entry reads only the
  entry's inputs (the caller passes them, like graph inputs), constants,
  tensors computed by earlier ops of the same entry, or tensors computed by an
  earlier entry (*cross-entry* tensors: they stay in the arena between calls,
  and the memory plan keeps them live from their producer to their last
  reader in any later entry). A later entry cannot read a caller's buffer of
  an earlier call (an earlier entry's input or output): it lists it among its
  own inputs instead.
- Every entry output is a graph output computed by that entry's ops; every
  graph output belongs to exactly one entry; every entry input is a graph
  input and every graph input is an input of at least one entry.
- Every op belongs to exactly one entry and the graph's op list is the entries'
  ops one entry after the other (so the one arena plan over graph order is the
  plan over all calls); `in_entry_order` reorders a graph built otherwise.

An Entry lists its ops by name, or leaves `ops` None to take the ops that
compute its outputs from its inputs, constants and earlier entries' tensors
(the robust choice: it survives lowering passes that replace ops).
A graph that declares no entries has one, DEFAULT_ENTRY = the whole graph.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_ENTRY = "run"
# Names the C API keeps for the whole-graph call (dmx_model_run, dmx_model_run_all).
RESERVED = ("run", "run_all")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Entry:
    """One callable piece of a graph: the tensors the caller passes and receives, and the ops it runs."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ops: list[str] | None = None  # op names in run order; None: derived from inputs and outputs


def whole_graph(graph) -> Entry:
    """The default entry: every op, the graph's inputs and outputs."""
    return Entry(list(graph.inputs), list(graph.outputs), [op.name for op in graph.ops])


def resolve(graph) -> dict[str, list[int]]:
    """Entry name -> indices of its ops in graph order; raise DmxError (via graph._fail) on a broken rule."""
    declared = graph.entry_points
    if not declared:
        return {DEFAULT_ENTRY: list(range(len(graph.ops)))}
    by_name = {op.name: i for i, op in enumerate(graph.ops)}
    if len(by_name) != len(graph.ops):
        graph._fail("entry points need unique op names")
    owner: dict[int, str] = {}
    produced_by: dict[str, str] = {}  # tensor -> entry whose op computes it
    result: dict[str, list[int]] = {}
    graph_inputs, graph_outputs = set(graph.inputs), set(graph.outputs)
    for name, e in declared.items():
        where = f"entry {name!r}"
        if name in RESERVED:
            graph._fail(f"entry name {name!r} is kept for the whole-graph call; choose another")
        if not isinstance(name, str) or not _NAME.match(name):
            graph._fail(f"entry name {name!r} must be lower case letters, digits and '_', starting with a letter")
        for t in e.inputs:
            if t not in graph_inputs:
                graph._fail(f"{where}: input {t!r} is not a graph input")
        for t in e.outputs:
            if t not in graph_outputs:
                graph._fail(f"{where}: output {t!r} is not a graph output")
        indices = _indices(graph, name, e, produced_by, by_name)
        if not indices:
            graph._fail(f"{where} runs no op")
        for i in indices:
            if i in owner:
                graph._fail(f"{where}: op {graph.ops[i].name!r} already belongs to entry {owner[i]!r}")
            owner[i] = name
        _check_reads(graph, name, e, indices, produced_by)
        for i in indices:
            for t in graph.ops[i].outputs:
                produced_by[t] = name
        for t in e.outputs:
            if produced_by.get(t) != name:
                graph._fail(f"{where}: output {t!r} is not computed by the entry's ops")
        result[name] = indices
    for i, op in enumerate(graph.ops):
        if i not in owner:
            graph._fail(f"op {op.name!r} ({op.kind}) belongs to no entry point")
    for t in graph.outputs:
        if not any(t in e.outputs for e in declared.values()):
            graph._fail(f"graph output {t!r} is an output of no entry point")
    for t in graph.inputs:
        if not any(t in e.inputs for e in declared.values()):
            graph._fail(f"graph input {t!r} is an input of no entry point")
    order = [i for indices in result.values() for i in indices]
    if order != list(range(len(graph.ops))):
        k = next(k for k, i in enumerate(order) if i != k)
        graph._fail(f"entry {owner[order[k]]!r}: op {graph.ops[order[k]].name!r} is out of order; the graph's ops "
                    "must be its entries' ops, one entry after the other (see graph.entries.in_entry_order)")
    return result


def _indices(graph, name: str, e: Entry, produced_by: dict[str, str], by_name: dict[str, int]) -> list[int]:
    """The entry's ops: as listed, or derived from its outputs."""
    return _derive(graph, name, e, produced_by) if e.ops is None else _listed(graph, name, e, by_name)


def _listed(graph, name: str, e: Entry, by_name: dict[str, int]) -> list[int]:
    indices = []
    for op_name in e.ops:
        if op_name not in by_name:
            graph._fail(f"entry {name!r}: op {op_name!r} does not exist")
        indices.append(by_name[op_name])
    return indices


def _derive(graph, name: str, e: Entry, produced_by: dict[str, str]) -> list[int]:
    """The ops that compute e.outputs from e.inputs, constants and tensors of earlier entries."""
    stop = set(e.inputs) | set(produced_by)
    producer = {t: i for i, op in enumerate(graph.ops) for t in op.outputs}
    needed: set[int] = set()
    todo = list(e.outputs)
    while todo:
        t = todo.pop()
        if not t or t in stop or graph.tensors[t].is_const:
            continue
        i = producer.get(t)
        if i is None:
            graph._fail(f"entry {name!r} needs {t!r}, which is neither among its inputs nor computed by an op"
                        f"{' (a graph input: list it among the entry inputs)' if t in graph.inputs else ''}")
        if i not in needed:
            needed.add(i)
            todo += graph.ops[i].inputs
    return sorted(needed)


def _check_reads(graph, name: str, e: Entry, indices: list[int], produced_by: dict[str, str]) -> None:
    """Each op reads only what the rule above allows."""
    available = set(e.inputs)
    for i in indices:
        op = graph.ops[i]
        for t in op.inputs:
            if not t or t in available or graph.tensors[t].is_const:
                continue
            earlier = produced_by.get(t)
            if earlier is None:
                what = "a graph input it does not list" if t in graph.inputs else "not computed before it"
                graph._fail(f"entry {name!r}: op {op.name!r} ({op.kind}) reads {t!r}, {what}")
            if t in graph.outputs:
                graph._fail(f"entry {name!r}: op {op.name!r} ({op.kind}) reads {t!r}, an output of entry "
                            f"{earlier!r} (the caller's buffer of that call)")
        available.update(op.outputs)


def cross_entry(graph) -> dict[str, tuple[str, str]]:
    """Tensors an entry computes and a later entry reads -> (producing entry, last reading entry):
    the ones the arena must keep between calls."""
    entries = resolve(graph)
    entry_of = {i: name for name, indices in entries.items() for i in indices}
    made = {t: entry_of[i] for i, op in enumerate(graph.ops) for t in op.outputs}
    out: dict[str, tuple[str, str]] = {}
    for i, op in enumerate(graph.ops):
        for t in op.inputs:
            if t in made and made[t] != entry_of[i]:
                out[t] = (made[t], entry_of[i])
    return out


def entry_of_ops(graph) -> list[str]:
    """The entry each op (by index) belongs to."""
    owner = [""] * len(graph.ops)
    for name, indices in resolve(graph).items():
        for i in indices:
            owner[i] = name
    return owner


def in_entry_order(graph):
    """The graph with its ops reordered entry by entry (derived entries' ops in graph order, listed
    ones as listed), for a builder that appended the ops in another topological order."""
    from .graph import Graph

    by_name = {op.name: i for i, op in enumerate(graph.ops)}
    produced: dict[str, str] = {}
    order: list[int] = []
    for name, e in graph.entry_points.items():
        indices = _indices(graph, name, e, produced, by_name)
        for i in indices:
            produced.update({t: name for t in graph.ops[i].outputs})
        order += [i for i in indices if i not in order]
    rest = [i for i in range(len(graph.ops)) if i not in set(order)]
    ops = [graph.ops[i] for i in order + rest]  # ops in no entry stay last, for validate to name them
    return Graph(graph.tensors, ops, list(graph.inputs), list(graph.outputs), graph.source,
                 dict(graph.entry_points))
