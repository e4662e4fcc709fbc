"""Typed values for the per-layer parameter structs the C templates print.

Python decides *what* each field holds (an integer, a float32, an array);
the templates decide how it is written in C. Arrays are emitted once per
layer in headers/<layer>.h and referenced from the struct by symbol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
          "int32": "int32_t", "uint32": "uint32_t", "float32": "float"}


@dataclass(frozen=True)
class F32:
    """A float32 constant (printed so that it reads back bit-exactly)."""

    value: float


@dataclass(frozen=True)
class F64:
    """A double constant (printed with Python's shortest round-trip repr)."""

    value: float


@dataclass
class Array:
    """One const array of a layer header; `role` is "weights" (the encoded weight
    matrix, counted as weight bytes) or "params" (bias, multipliers, tables)."""

    symbol: str
    values: np.ndarray
    role: str = "params"
    comment: str = ""

    @property
    def ctype(self) -> str:
        return CTYPES[self.values.dtype.name]

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)


@dataclass(frozen=True)
class Sym:
    """A reference to an Array by symbol, or NULL (None) for an absent or empty array."""

    symbol: str | None


@dataclass
class Field:
    name: str
    kind: str  # int | f32 | f64 | sym | ints | struct
    value: Any


def fields(**values: Any) -> list[Field]:
    """Struct fields in keyword order, each tagged with how the template prints it."""
    out = []
    for name, v in values.items():
        if isinstance(v, Field):
            out.append(Field(name, v.kind, v.value))
        elif isinstance(v, (bool, int, np.integer)):
            out.append(Field(name, "int", int(v)))
        elif isinstance(v, F32):
            out.append(Field(name, "f32", v.value))
        elif isinstance(v, F64):
            out.append(Field(name, "f64", v.value))
        elif isinstance(v, Sym):
            out.append(Field(name, "sym", v.symbol))
        elif isinstance(v, list) and v and isinstance(v[0], Field):
            out.append(Field(name, "struct", v))
        elif isinstance(v, (list, tuple)):
            out.append(Field(name, "ints", [int(x) for x in v]))
        else:
            raise TypeError(f"field {name!r}: cannot print {type(v).__name__}")
    return out
