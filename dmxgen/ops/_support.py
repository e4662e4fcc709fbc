"""Per-target code registered against an op kind, checked against what the spec claims.

A backend or frontend keeps its own code per op (a C resolver, an HLS builder,
a TFLite operator mapping) and registers it with a decorator made by a
`Registry`. `OpSpec.targets` is the declared support matrix; `lookup` fails
loudly both when a kind is asked of a target it does not claim (the user's
problem: a DmxError naming the layer) and when a claimed kind has no code
(a bug: tests/ops/test_support.py finds it before a user does).
"""
from __future__ import annotations

from typing import Any, Callable

from ..errors import DmxError
from ..graph.op import SPECS

# Targets besides the reference, in the support table's column order.
TARGETS = ("c", "c_mve", "hls", "tflite", "torch")


class RegistrationError(RuntimeError):
    """A target's registrations disagree with a spec: a bug in dmxgen, not in the model."""


class Registry:
    """kind -> one entry of per-op code for one target, filled by the `register` decorator."""

    def __init__(self, target: str, what: str):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
        self.target, self.what = target, what  # what: "C kernel", "HLS kernel"
        self.entries: dict[str, Any] = {}

    def register(self, kind: str, **info) -> Callable:
        """Decorator: `fn` is this target's code for `kind`; keyword info is kept beside it."""
        if kind not in SPECS:
            raise ValueError(f"{self.target}: {kind!r} is not an op kind")

        def decorate(fn):
            if kind in self.entries:
                raise ValueError(f"{self.target}: {kind!r} is registered twice")
            self.entries[kind] = Entry(kind, fn, info)
            return fn

        return decorate

    def lookup(self, kind: str, where: str) -> Entry:
        """The entry for `kind`; `where` ("layer 'conv_3'") starts the message when there is none."""
        entry = self.entries.get(kind)
        if entry is not None:
            return entry
        if kind in SPECS and self.target in SPECS[kind].targets:
            raise RegistrationError(f"{kind} claims target {self.target!r} (ops/{kind}.py) but has no "
                               f"{self.what} registered")
        runs_on = ", ".join(("reference",) + SPECS[kind].targets) if kind in SPECS else "nothing"
        raise DmxError(f"{where}: op {kind} has no {self.what} (it runs on: {runs_on})")

    def __contains__(self, kind: str) -> bool:
        return kind in self.entries

    def __iter__(self):
        return iter(self.entries)


class Entry:
    """One registration: the code and the keyword info given with it (read as attributes)."""

    def __init__(self, kind: str, fn: Callable, info: dict):
        self.kind, self.fn, self.info = kind, fn, info

    def __getattr__(self, name: str):
        try:
            return self.__dict__["info"][name]
        except KeyError:
            raise AttributeError(name) from None
