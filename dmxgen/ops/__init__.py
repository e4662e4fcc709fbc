"""The op registry: one spec per op kind (dmxgen/ops/<kind>.py), found by its name.

Every module here that does not start with "_" is an op: importing this
package imports them all, and each registers its spec with `@register`.
The table itself (SPECS) lives in dmxgen/graph/op.py so that the graph can
check an Op's attrs when it is built without importing this package (ops ->
graph only); dmxgen/__init__.py imports this package, so the table is full
before any Op exists. OP_KINDS (kind -> summary) is derived from SPECS. Backends and frontends register
their per-op code with a `Registry` (ops/_support.py), checked against each
spec's `targets`.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..graph.op import OP_KINDS, SPECS
from ._spec import OpSpec
from ._support import TARGETS, Registry, RegistrationError

__all__ = ["OP_KINDS", "OpSpec", "Registry", "RegistrationError", "SPECS", "TARGETS", "register", "spec"]


def register(cls: type[OpSpec]) -> type[OpSpec]:
    """Class decorator: make `cls` the spec of `cls.kind`."""
    if cls.kind in SPECS:
        raise ValueError(f"op kind {cls.kind!r} is registered twice")
    SPECS[cls.kind] = cls()
    return cls


def spec(kind: str) -> OpSpec:
    """The spec of an op kind."""
    try:
        return SPECS[kind]
    except KeyError:
        raise ValueError(f"unknown op kind {kind!r}") from None


def _import_op_modules() -> None:
    for module in pkgutil.iter_modules(__path__):  # sorted by name
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_op_modules()
