"""Typed values for the per-layer parameter structs the C templates print.

Python decides *what* each field holds (an integer, a float32, an array);
the templates decide how it is written in C. Arrays are emitted once per
layer in headers/<layer>.h and referenced from the struct by symbol.

The struct typedefs are declared once, in the kernel templates; `check_struct`
reads them back and refuses a layer whose fields are not exactly those (a field
left out would otherwise print as a silent zero).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
          "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "float32": "float"}


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


@dataclass(frozen=True)
class Structs:
    """An array of structs of C type `ctype` (each a list of Fields), pointed to by the field."""

    ctype: str
    items: list


@dataclass
class Field:
    name: str
    kind: str  # int | f32 | f64 | sym | ints | struct | structs
    value: Any
    ctype: str = ""  # the element struct type of a "structs" field


def fields(**values: Any) -> list[Field]:
    """Struct fields in keyword order, each tagged with how the template prints it."""
    out = []
    for name, v in values.items():
        if isinstance(v, Field):
            out.append(Field(name, v.kind, v.value, v.ctype))
        elif isinstance(v, Structs):
            out.append(Field(name, "structs", list(v.items), v.ctype))
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


# -- the struct declarations of the kernel templates, and the check against them -------------------
INT_RANGES = {c: (int(np.iinfo(n).min), int(np.iinfo(n).max)) for n, c in CTYPES.items() if n != "float32"}
_TYPEDEF = re.compile(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", re.S)
_DECLARATOR = re.compile(r"^(\*?)\s*(\w+)\s*(?:\[(\d+)\])?$")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


class StructMismatch(Exception):
    """A layer's fields differ from the struct its kernel template declares (a backend bug)."""


@dataclass(frozen=True)
class Member:
    """One member of a template's struct: `ctype name[length]`, or a pointer `const ctype *name`."""

    name: str
    ctype: str
    pointer: bool = False
    length: int | None = None


def parse_structs(c_text: str) -> dict[str, tuple[Member, ...]]:
    """`typedef struct { ... } name;` declarations of C source -> their members in order."""
    out = {}
    for body, name in _TYPEDEF.findall(_COMMENT.sub(" ", c_text)):
        members = []
        for decl in filter(None, (d.strip() for d in body.split(";"))):
            words = [w for w in decl.replace("*", " * ").split() if w != "const"]
            ctype, rest = words[0], " ".join(words[1:])
            for one in rest.split(","):
                m = _DECLARATOR.match(one.strip().replace("* ", "*"))
                if m is None:
                    raise ValueError(f"struct {name}: cannot read member declaration {decl!r}")
                members.append(Member(m[2], ctype, bool(m[1]), int(m[3]) if m[3] else None))
        out[name] = tuple(members)
    return out


@lru_cache(maxsize=1)
def declared_structs() -> dict[str, tuple[Member, ...]]:
    """Every struct typedef of templates/c/kernels/**.c.j2 (s16/: the 16x8 kernels), rendered in each weight format."""
    from . import c_render  # the templates' own Jinja environment

    env, found = c_render.environment(), {}
    kernels = c_render.TEMPLATES / "kernels"
    for path in sorted(kernels.rglob("*.c.j2")):
        for fmt in ("dense", "csr", "dcsr", "dcsr_gather"):
            for part in ("header", "source"):
                text = env.get_template(f"kernels/{path.relative_to(kernels).as_posix()}").render(
                    fmt=fmt, part=part, first=True)
                for name, members in parse_structs(text).items():
                    if found.setdefault(name, members) != members:
                        raise StructMismatch(f"struct {name} is declared twice with different members "
                                             f"(templates/c/kernels/{path.name})")
    return found


def check_struct(ctype: str, given: list[Field], arrays: dict[str, str], where: str) -> None:
    """Raise StructMismatch unless `given` sets every member of struct `ctype`, no other, each with a
    value of its C type (integer range, array length, pointee type of an array symbol in `arrays`)."""
    members = declared_structs().get(ctype)
    if members is None:
        raise StructMismatch(f"{where}: no kernel template declares struct {ctype}")
    names = [m.name for m in members]
    by_name = {f.name: f for f in given}
    missing = [n for n in names if n not in by_name]
    extra = [f.name for f in given if f.name not in names]
    repeated = sorted({f.name for f in given if [g.name for g in given].count(f.name) > 1})
    problems = [f"{what} {', '.join(names_)}" for what, names_ in
                (("missing", missing), ("not declared:", extra), ("given twice:", repeated)) if names_]
    if problems:
        raise StructMismatch(f"{where}: struct {ctype} (templates/c/kernels) has fields {', '.join(names)}; "
                             + "; ".join(problems))
    for m in members:
        _check_member(m, by_name[m.name], arrays, f"{where}: {ctype}.{m.name}")


def _check_member(m: Member, f: Field, arrays: dict[str, str], where: str) -> None:
    def fail(why: str) -> StructMismatch:
        return StructMismatch(f"{where} ({m.ctype}{' *' if m.pointer else ''}"
                              f"{f'[{m.length}]' if m.length else ''}): {why}")

    def in_range(values) -> None:
        lo, hi = INT_RANGES[m.ctype]
        bad = [v for v in values if not lo <= v <= hi]
        if bad:
            raise fail(f"{bad[0]} does not fit")

    if m.pointer:
        if f.kind == "sym":
            if f.value is not None and m.ctype != "void" and arrays.get(f.value, m.ctype) != m.ctype:
                raise fail(f"points to {arrays[f.value]} array {f.value}")
        elif f.kind == "structs" and f.ctype == m.ctype:
            for k, item in enumerate(f.value):
                check_struct(m.ctype, item, arrays, f"{where}[{k}]")
        else:
            raise fail(f"given a {f.kind} value")
    elif m.length is not None:
        if f.kind != "ints" or m.ctype not in INT_RANGES or len(f.value) != m.length:
            raise fail(f"given {f.kind} {f.value!r}")
        in_range(f.value)
    elif m.ctype in INT_RANGES:
        if f.kind != "int":
            raise fail(f"given a {f.kind} value")
        in_range([f.value])
    elif (m.ctype, f.kind) not in (("float", "f32"), ("double", "f64")):
        if f.kind != "struct":
            raise fail(f"given a {f.kind} value")
        check_struct(m.ctype, f.value, arrays, where)
