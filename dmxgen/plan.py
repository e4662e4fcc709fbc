"""Static memory plan: tensor lifetimes -> offsets in one arena.

A microcontroller build has no malloc, so the exported C gets one static
arena sized at export time. Tensors are grouped into buffers (a reshape's
output is its input's bytes; an elementwise op may write over an input that
dies at that op), each buffer lives from the op that first writes it to the
op that last reads it, and buffers whose lifetimes overlap never share bytes.
The graph's input and output live in the caller's buffers, not in the arena
(docs/exported-folder.md), and constants live in flash.

A graph with named entry points (graph/entries.py) gets one plan over all of
them: its ops are the entries' ops one entry after the other, so a tensor one
entry computes and a later one reads lives, like any tensor, from its producer
to its last reader, and no op of an entry in between may take its bytes. Such
a tensor must be in the arena (the caller's buffers of one call are gone at
the next), and a caller's output buffer only ever holds what its own entry
computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Graph, Op
from .graph.entries import entry_of_ops

ALIGNMENT = 16  # bytes; MVE loads and int32 scratch both like it


@dataclass
class Buffer:
    """Bytes shared by one or more tensors (aliases or in-place results) over one lifetime."""

    tensors: list[str]
    size: int
    start: int  # index of the op that first writes it; -1 for the graph input
    end: int  # index of the op that last reads it; len(ops) for the graph output
    io: str | None = None  # "input" or "output" when it is the caller's buffer
    scratch_of: int | None = None  # op index, for an op's temporary working memory
    persistent: bool = False  # state kept across runs (an LSTM's): its bytes are its own for good
    offset: int = 0  # in the arena (0 for caller buffers)

    @property
    def name(self) -> str:
        return self.tensors[0] if self.tensors else f"scratch:{self.scratch_of}"

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass
class Plan:
    buffers: list[Buffer]
    tensor_buffer: dict[str, int]  # tensor name -> index into buffers
    scratch: dict[int, int] = field(default_factory=dict)  # op index -> buffer index
    copies: set[int] = field(default_factory=set)  # reshape ops that must copy their bytes
    inplace: set[int] = field(default_factory=set)  # ops whose output shares an input's bytes
    arena_size: int = 0
    alignment: int = ALIGNMENT

    def buffer(self, tensor: str) -> Buffer:
        return self.buffers[self.tensor_buffer[tensor]]

    def storage(self, tensor: str) -> str:
        """'arena', 'input' or 'output'."""
        return self.buffer(tensor).io or "arena"

    def offset(self, tensor: str) -> int:
        return self.buffer(tensor).offset

    def scratch_offset(self, op_index: int) -> int | None:
        b = self.scratch.get(op_index)
        return None if b is None else self.buffers[b].offset

    @property
    def arena_buffers(self) -> list[Buffer]:
        return [b for b in self.buffers if b.io is None]

    def live_bytes(self, step: int) -> int:
        """Arena bytes in use while op `step` runs (sizes before alignment)."""
        return sum(b.size for b in self.arena_buffers if b.start <= step <= b.end)

    @property
    def peak_live_bytes(self) -> int:
        """The most arena bytes live at once: a lower bound for any placement."""
        steps = {b.start for b in self.arena_buffers}
        return max((self.live_bytes(s) for s in steps), default=0)

    def io_bytes(self) -> dict[str, int]:
        return {b.io: b.size for b in self.buffers if b.io}

    @property
    def state_buffers(self) -> list[Buffer]:
        """The persistent buffers: state tensors that runs read and write and no other tensor shares."""
        return [b for b in self.buffers if b.persistent]


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _inplace_input(graph: Graph, op: Op, i: int, buffers: list[Buffer], where: dict[str, int],
                   last: dict[str, int]) -> int | None:
    """The buffer of an input whose bytes the op's output can take, or None."""
    if not op.spec.inplace(op):  # the op's trait (dmxgen/ops/<kind>.py)
        return None
    out = graph.tensors[op.outputs[0]]
    for name in op.inputs:
        if not name or name not in where:
            continue
        t = graph.tensors[name]
        b = buffers[where[name]]
        if b.io is not None or b.persistent or t.shape != out.shape or t.nbytes != out.nbytes:
            continue
        if max(last.get(m, b.start) for m in b.tensors) == i:  # every alias dies here
            return where[name]
    return None


def _may_join(b: Buffer, out: str, i: int, outputs: set[str], entry_of: list[str],
              read_by: dict[str, set[str]]) -> bool:
    """May op i's output `out` share buffer b? Across entry points: not a caller's buffer that
    a later call reads, and not a caller's output buffer holding another call's tensors."""
    entry = entry_of[i]
    if b.io is not None and read_by[out] - {entry}:
        return False
    return not (out in outputs and (b.io == "input" or entry_of[b.start] != entry))


def plan_memory(graph: Graph, scratch: dict[int, int] | None = None, alignment: int = ALIGNMENT,
                inplace: bool = True) -> Plan:
    """Lifetimes, aliasing and a greedy first-fit placement (largest buffers first).

    `scratch` maps an op index to the bytes of working memory its kernel needs
    while it runs (an im2col patch, int32 accumulators).
    """
    n_ops = len(graph.ops)
    last = graph.last_uses()
    entry_of = entry_of_ops(graph) if graph.has_entry_points else [""] * n_ops
    read_by: dict[str, set[str]] = {n: set() for n in graph.tensors}  # tensor -> entries whose ops read it
    for j, o in enumerate(graph.ops):
        for n in o.inputs:
            if n:
                read_by[n].add(entry_of[j])
    buffers: list[Buffer] = []
    where: dict[str, int] = {}
    copies: set[int] = set()
    done_inplace: set[int] = set()
    outputs = set(graph.outputs)

    def new_buffer(name: str, start: int, io: str | None) -> None:
        where[name] = len(buffers)
        buffers.append(Buffer([name], graph.tensors[name].nbytes, start, start, io))

    for name in graph.inputs:
        new_buffer(name, -1, "input")
    for name in dict.fromkeys(n for op in graph.ops for k in op.spec.state_inputs for n in op.inputs[k:k + 1] if n):
        where[name] = len(buffers)  # live before the first op and after the last: no other tensor's bytes
        buffers.append(Buffer([name], graph.tensors[name].nbytes, -1, n_ops, None, persistent=True))
    scratch_index: dict[int, int] = {}
    for i, op in enumerate(graph.ops):
        out = op.outputs[0]
        src = where.get(op.inputs[0]) if op.inputs and op.inputs[0] else None
        if src is not None and not _may_join(buffers[src], out, i, outputs, entry_of, read_by):
            src = None
        if op.kind == "reshape" and src is not None and not (buffers[src].io and out in outputs):
            joined = src
        else:
            joined = _inplace_input(graph, op, i, buffers, where, last) if inplace else None
            if joined is not None and not _may_join(buffers[joined], out, i, outputs, entry_of, read_by):
                joined = None
            if joined is not None:
                done_inplace.add(i)
            elif op.kind == "reshape":
                copies.add(i)
        if joined is None:
            new_buffer(out, i, "output" if out in outputs else None)
        else:
            buffers[joined].tensors.append(out)
            where[out] = joined
            if out in outputs:
                buffers[joined].io = "output"
        for extra in op.outputs[1:]:
            new_buffer(extra, i, "output" if extra in outputs else None)
        if scratch and scratch.get(i):
            scratch_index[i] = len(buffers)
            buffers.append(Buffer([], int(scratch[i]), i, i, None, scratch_of=i))
    for b in buffers:
        if b.scratch_of is None and not b.persistent:
            b.end = max([b.start] + [last.get(m, b.start) for m in b.tensors])
            if b.io == "output":
                b.end = n_ops
    plan = Plan(buffers, where, scratch_index, copies, done_inplace, alignment=alignment)
    plan.arena_size = _place(plan.arena_buffers, alignment)
    return plan


def _place(buffers: list[Buffer], alignment: int) -> int:
    """Greedy first fit, largest first: each buffer goes to the lowest aligned
    offset that no already placed, time-overlapping buffer covers."""
    order = sorted(buffers, key=lambda b: (-b.size, b.start, b.end, b.name))
    placed: list[Buffer] = []
    top = 0
    for b in order:
        busy = sorted((p.offset, p.offset + p.size) for p in placed if p.overlaps_in_time(b) and p.size)
        offset = 0
        for lo, hi in busy:
            if offset + b.size <= lo:
                break
            offset = max(offset, _align(hi, alignment))
        b.offset = offset
        placed.append(b)
        top = max(top, offset + b.size)
    return _align(top, alignment)
