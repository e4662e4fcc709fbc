"""The integer graph every frontend produces and every backend prints."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DmxError
from .op import Op
from .tensor import Tensor


@dataclass
class Graph:
    """Ops in topological order over named tensors.

    `source` names where the graph came from (a file path) so that error
    messages can point at it.
    """

    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    source: str = ""

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
        """The weight tensor of an op whose spec has a weights input (conv, fc), else None."""
        indices = op.spec.weight_inputs
        return self.tensors[op.inputs[indices[0]]] if indices else None

    def _fail(self, msg: str) -> None:
        where = f"{self.source}: " if self.source else ""
        raise DmxError(f"{where}{msg}")

    def validate(self) -> None:
        """Check names, topological order and per-op shape rules; raise DmxError."""
        from .shapes import check_op

        available = {n for n, t in self.tensors.items() if t.is_const}
        for name in self.inputs:
            if name not in self.tensors:
                self._fail(f"graph input {name!r} is not a tensor")
            available.add(name)
        produced: set[str] = set()
        for op in self.ops:
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
