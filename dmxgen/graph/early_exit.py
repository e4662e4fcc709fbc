"""The integer graph of an early-exit model: one entry point per exit, then the final classifier.

The torch frontend builds the graph with outputs [exit 0 logits, ..., exit K-1
logits, final logits] (compress/early_exit.py orders them shallowest first).
`with_exit_entries` declares the entries (graph/entries.py): "exit<k>"
computes the backbone up to exit k and exit k's head, "final" the rest; only
"exit0" takes the model input, the later entries read what the earlier ones
left in the arena. A caller runs them in order and stops at the first head
the policy (graph/exit_policy.py) accepts.
"""
from __future__ import annotations

from ..errors import DmxError
from .entries import Entry, in_entry_order
from .exit_policy import ExitPolicy, check_kind
from .graph import Graph

FINAL = "final"


def exit_entry(k: int) -> str:
    return f"exit{k}"


def with_exit_entries(graph: Graph, n_exits: int) -> Graph:
    """The graph with its ops in entry order and the exit entries declared; validated."""
    if n_exits < 1 or len(graph.outputs) != n_exits + 1:
        raise DmxError(f"an early-exit graph needs {n_exits} exit output(s) and the final one, "
                       f"it has {len(graph.outputs)} output(s)")
    if len(graph.inputs) != 1:
        raise DmxError(f"an early-exit graph needs one input, it has {len(graph.inputs)}")
    entries = {exit_entry(k): Entry([graph.inputs[0]] if k == 0 else [], [graph.outputs[k]]) for k in range(n_exits)}
    entries[FINAL] = Entry([], [graph.outputs[-1]])
    declared = Graph(graph.tensors, list(graph.ops), list(graph.inputs), list(graph.outputs), graph.source, entries)
    ordered = in_entry_order(declared)
    ordered.validate()
    return ordered


def exit_outputs(graph: Graph) -> list[str]:
    """The output tensor of every entry, in call order (the exits', then the final logits)."""
    entries = graph.entries
    if FINAL not in entries or list(entries)[-1] != FINAL:
        raise DmxError("the graph is not an early-exit graph (no 'final' entry last)")
    return [e.outputs[0] for e in entries.values()]


def _needed_by(graph: Graph, outputs: list[str]) -> set[int]:
    """Indices of the ops the tensors `outputs` are computed from."""
    producer = {t: i for i, op in enumerate(graph.ops) for t in op.outputs}
    needed: set[int] = set()
    todo = list(outputs)
    while todo:
        i = producer.get(todo.pop())
        if i is not None and i not in needed:
            needed.add(i)
            todo += graph.ops[i].inputs
    return needed


def head_ops(graph: Graph) -> dict[str, list[str]]:
    """Exit entry -> the names of its ops the final classifier does not need: the exit head's
    (its weights are the exit branches' extra flash; they go to headers/<layer>_ee.h)."""
    backbone = _needed_by(graph, [exit_outputs(graph)[-1]])
    ops = graph.entry_ops()
    return {name: [graph.ops[i].name for i in ops[name] if i not in backbone] for name in list(graph.entries)[:-1]}


def baseline(graph: Graph) -> Graph:
    """The backbone alone (no heads, no entry points): what model.c keeps computing."""
    final = exit_outputs(graph)[-1]
    keep = _needed_by(graph, [final])
    ops = [op for i, op in enumerate(graph.ops) if i in keep]
    used = {t for op in ops for t in (*op.inputs, *op.outputs)} | set(graph.inputs)
    tensors = {n: t for n, t in graph.tensors.items() if n in used}
    out = Graph(tensors, ops, list(graph.inputs), [final], graph.source)
    out.validate()
    return out


def with_policy(graph: Graph, kind: str, thresholds) -> Graph:
    """The graph carrying its exit policy (Graph.early_exit), so a saved model exports on its own."""
    outputs = exit_outputs(graph)[:-1]
    if len(thresholds) != len(outputs):
        raise DmxError(f"the early-exit policy has {len(thresholds)} threshold(s) for {len(outputs)} exit(s)")
    graph.early_exit = {exit_entry(k): (t, kind, int(thr)) for k, (t, thr) in enumerate(zip(outputs, thresholds))}
    return graph


def stored_policy(graph: Graph):
    """The ExitPolicy Graph.early_exit describes, checked against the graph's entries and tensors:
    one line naming the exit, the entry or the tensor that does not fit."""
    where = f"{graph.source}: " if graph.source else ""
    entries = graph.entries
    names = list(entries)
    if FINAL not in entries or names[-1] != FINAL:
        raise DmxError(f"{where}early-exit policy: the graph has no {FINAL!r} entry point last")
    exits = names[:-1]
    kinds, thresholds = set(), []
    for name, spec in graph.early_exit.items():
        if name not in entries or name == FINAL:
            raise DmxError(f"{where}early-exit policy names entry {name!r}, which is not an exit entry of the graph "
                           f"(exits: {', '.join(exits) or 'none'})")
        tensor, kind, threshold = spec
        if tensor not in graph.tensors:
            raise DmxError(f"{where}early-exit policy of {name!r} reads tensor {tensor!r}, which does not exist")
        if entries[name].outputs != [tensor]:
            raise DmxError(f"{where}early-exit policy of {name!r} reads tensor {tensor!r}, which is not that "
                           f"entry's one output")
        kinds.add(check_kind(kind))
        thresholds.append(threshold)
    missing = [n for n in exits if n not in graph.early_exit]
    if missing:
        raise DmxError(f"{where}early-exit policy has no threshold for exit entry {missing[0]!r}")
    if list(graph.early_exit) != exits:
        raise DmxError(f"{where}early-exit policy lists the exits as {', '.join(graph.early_exit)}, "
                       f"not in call order {', '.join(exits)}")
    if len(kinds) != 1:
        raise DmxError(f"{where}early-exit policy mixes kinds {', '.join(sorted(kinds))}; one kind for every exit")
    return ExitPolicy(kinds.pop(), tuple(thresholds))
