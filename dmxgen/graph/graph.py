"""The integer graph every frontend produces and every backend prints."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DmxError
from . import entries as _entries
from .entries import Entry
from .op import Op
from .tensor import Tensor


@dataclass
class Graph:
    """Ops in topological order over named tensors.

    `source` names where the graph came from (a file path) so that error
    messages can point at it. `entry_points` are the named calls the graph
    is split into (graph/entries.py); none declared means one, "run", the
    whole graph.
    """

    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    source: str = ""
    entry_points: dict[str, Entry] = field(default_factory=dict)  # as declared; empty: the default entry
    # early-exit policy (graph/early_exit.py): exit entry -> (head output tensor, policy kind, threshold)
    early_exit: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    @property
    def entries(self) -> dict[str, Entry]:
        """Entry name -> Entry, in call order: the declared ones, else {"run": the whole graph}."""
        return dict(self.entry_points) if self.entry_points else {_entries.DEFAULT_ENTRY: _entries.whole_graph(self)}

    @entries.setter
    def entries(self, value: dict[str, Entry]) -> None:
        self.entry_points = dict(value)

    @property
    def has_entry_points(self) -> bool:
        """True when the graph declares its own entries (backends then print one function per entry)."""
        return bool(self.entry_points)

    def entry_ops(self) -> dict[str, list[int]]:
        """Entry name -> indices of the ops it runs (graph order); validates the entry rules."""
        return _entries.resolve(self)

    def add_tensor(self, t: Tensor) -> Tensor:
        if t.name in self.tensors:
            raise ValueError(f"duplicate tensor name {t.name!r}")
        self.tensors[t.name] = t
        return t

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, name: str) -> Op | None:
        for op in self.ops:
            if name in op.outputs:
                return op
        return None

    def consumers(self, name: str) -> list[Op]:
        return [op for op in self.ops if name in op.inputs]

    def last_uses(self) -> dict[str, int]:
        """Tensor name -> index of the last op reading it; graph outputs live past the end."""
        last: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            for n in op.inputs:
                if n:
                    last[n] = i
        for n in self.outputs:
            last[n] = len(self.ops)
        return last

    def weights(self, op: Op) -> Tensor | None:
        """The (first) weight tensor of an op whose spec has a weights input (conv, fc), else None."""
        tensors = self.weight_tensors(op)
        return tensors[0] if tensors else None

    def weight_tensors(self, op: Op) -> list[Tensor]:
        """Every weight input of the op, in input order (an LSTM has several); absent ones skipped."""
        return [self.tensors[op.inputs[i]] for i in op.spec.weight_inputs if i < len(op.inputs) and op.inputs[i]]

    def _fail(self, msg: str) -> None:
        where = f"{self.source}: " if self.source else ""
        raise DmxError(f"{where}{msg}")

    def validate(self) -> None:
        """Check names, topological order, output counts, per-op shape rules and the entry-point
        rules (graph/entries.py); raise DmxError."""
        from .shapes import check_op

        available = {n for n, t in self.tensors.items() if t.is_const}
        for name in self.inputs:
            if name not in self.tensors:
                self._fail(f"graph input {name!r} is not a tensor")
            available.add(name)
        produced: set[str] = set()
        for op in self.ops:
            if len(op.outputs) != op.spec.outputs:  # every output the kind writes, no fewer, no more
                n = len(op.outputs)
                have = f"{n} output{'' if n == 1 else 's'}" if n else "no output"
                where = f", output {op.outputs[0]!r}" if op.outputs else ""
                self._fail(f"op {op.name!r} ({op.kind}{where}): has {have}, {op.kind} writes {op.spec.outputs}")
            for name in op.inputs:
                if name == "":
                    continue
                if name not in self.tensors:
                    self._fail(f"op {op.name!r} ({op.kind}): input tensor {name!r} does not exist")
                if name not in available:
                    self._fail(f"op {op.name!r} ({op.kind}): input {name!r} is used before it is computed")
            for name in op.outputs:
                if name not in self.tensors:
                    self._fail(f"op {op.name!r} ({op.kind}): output tensor {name!r} does not exist")
                if name in produced or name in self.inputs or self.tensors[name].is_const:
                    self._fail(f"op {op.name!r} ({op.kind}): tensor {name!r} is written twice")
                produced.add(name)
                available.add(name)
            problem = check_op(self, op)
            if problem:
                self._fail(f"op {op.name!r} ({op.kind}, output {op.outputs[0]!r}): {problem}")
        for name in self.outputs:
            if name not in available:
                self._fail(f"graph output {name!r} is never computed")
        self.entry_ops()
