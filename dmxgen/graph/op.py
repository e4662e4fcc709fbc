"""Operators of the integer graph.

An op refers to its tensors by name. `attrs` hold everything a kernel needs as
plain integers and tuples (requantization multipliers and shifts, padding,
clamp bounds), derived once by a frontend, so that the reference and every
backend read the same numbers and none of them does float arithmetic.

What each kind is (its typed attrs, shape rules, reference kernel and traits)
is its spec in dmxgen/ops/<kind>.py. The table of specs lives here, filled by
dmxgen.ops when it is imported (dmxgen/__init__.py does so first), so that an
Op checks its attrs where it is built while graph never imports ops.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# kind -> OpSpec (dmxgen/ops/_spec.py), filled by dmxgen.ops.register.
SPECS: dict[str, Any] = {}


class _Summaries(Mapping):
    """kind -> one-line description, read from the registered specs."""

    def __getitem__(self, kind: str) -> str:
        return SPECS[kind].summary

    def __iter__(self) -> Iterator[str]:
        return iter(SPECS)

    def __len__(self) -> int:
        return len(SPECS)

    def __repr__(self) -> str:
        return repr(dict(self))


OP_KINDS: Mapping[str, str] = _Summaries()


@dataclass
class Op:
    name: str
    kind: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SPECS:
            raise ValueError(f"op {self.name!r}: unknown kind {self.kind!r}")
        self.spec.attrs(self)  # a missing, unknown or mistyped attribute fails here

    @property
    def spec(self):
        """The kind's OpSpec: traits, shape check, reference kernel."""
        return SPECS[self.kind]

    @property
    def a(self):
        """The typed (frozen dataclass) view of `attrs`, with defaults filled in."""
        return SPECS[self.kind].attrs(self)
