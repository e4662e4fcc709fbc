"""Jinja2 for the C templates: the environment, number printing, kernel selection.

Filters print numbers only (integers, float32 and double literals that read
back bit-exactly); every piece of C syntax is in templates/c/.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
import numpy as np

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "c"
# Headers shared with the other targets (the HLS kernels include them too), copied into the folder as is.
SHARED = TEMPLATES.parent / "common"
SHARED_HEADERS = ("dmx_int.h",)  # in every export
OPTIONAL_HEADERS = ("dmx_isqrt.h", "dmx_lstm_int.h")  # in the exports whose kernels include them (layer_norm, lstm)
PER_LINE = 24

# Helper kernels other kernels call, printed first, in dependency order (all static inline).
HELPERS = ("common", "im2col", "matvec_dense", "matvec_csr", "matvec_dcsr", "matvec_dcsr_gather")


def kernel_order() -> dict[str, bool]:
    """Kernel template -> static inline in kernels.h (True) or out of line in kernels.c (False).

    The order kernels.h prints them in: the helpers, then each C resolver's own kernels in
    the order the resolvers are registered (c_layers.py), the inline ones before the others.
    Op kernels call only helpers, so any order of them compiles; this one keeps kernels.h
    byte-identical to the hand-written list it replaced (tests/ops/test_support.py).
    """
    from .c_layers import C_RESOLVERS

    owned = [(name, inline) for kind in C_RESOLVERS for name, inline in C_RESOLVERS.entries[kind].kernels.items()]
    ordered = [(name, True) for name in HELPERS] + sorted(owned, key=lambda item: not item[1])  # stable
    order: dict[str, bool] = {}
    for name, inline in ordered:
        if order.setdefault(name, inline) != inline:
            raise ValueError(f"kernel template {name!r} is registered both inline and out of line")
    return order


@dataclass(frozen=True)
class Kernel:
    name: str
    fmt: str | None
    inline: bool
    template: str
    mve: str | None  # kernels/<name>_mve.c.j2 when an MVE variant exists
    first: bool = True  # the first of the name's variants: it prints what they share (a struct)


def c_f32(x: float) -> str:
    """A float32 literal: 9 significant digits read back to the same float32."""
    v = float(np.float32(x))
    if not np.isfinite(v):
        raise ValueError(f"cannot print non-finite float {v}")
    return f"{v:.8e}f"


def c_f64(x: float) -> str:
    """A double literal: Python's shortest repr reads back to the same double."""
    v = float(x)
    if not np.isfinite(v):
        raise ValueError(f"cannot print non-finite double {v}")
    return repr(v)


def _c_f32_value(x: float) -> str:
    """An array element: data (a NaN or inf model input) may be non-finite, unlike a scale."""
    if np.isnan(x):
        return "__builtin_nanf(\"\")"
    if np.isinf(x):
        return "-__builtin_inff()" if x < 0 else "__builtin_inff()"
    return c_f32(x)


def c_values(values: np.ndarray) -> str:
    """Array elements, comma separated, PER_LINE per line, indented."""
    a = np.asarray(values).reshape(-1)
    items = [_c_f32_value(x) for x in a.tolist()] if a.dtype.kind == "f" else [str(x) for x in a.tolist()]
    lines = ["    " + ", ".join(items[i:i + PER_LINE]) for i in range(0, len(items), PER_LINE)]
    return ",\n".join(lines)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(c_f32=c_f32, c_f64=c_f64, c_values=c_values)
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def kernel_files(ctx: dict) -> dict[str, str]:
    """kernels.h, kernels.c and the shared headers they include: file name -> text."""
    files = {"kernels.h": render("kernels.h.j2", **ctx), "kernels.c": render("kernels.c.j2", **ctx)}
    files.update({name: (SHARED / name).read_text(encoding="ascii") for name in SHARED_HEADERS})
    files.update({name: (SHARED / name).read_text(encoding="ascii") for name in OPTIONAL_HEADERS
                  if f'#include "{name}"' in files["kernels.h"] + files["kernels.c"]})
    return files


def _is_dtype_variant(fmt: str) -> bool:
    """A kernel variant named by its dtypes ("s16", "s8_s16") rather than by a weight format."""
    return fmt[:1] == "s" and fmt[1:2].isdigit()


def _variant_order(fmt: str) -> tuple[bool, str]:
    """Weight formats by name, then dtype variants, so the int8 kernels print first, as before."""
    return (_is_dtype_variant(fmt), fmt)


def kernels_for(needed: set[tuple[str, str | None]]) -> list[Kernel]:
    """The kernels to print, in dependency order, each with its MVE variant if one exists."""
    names = {n for n, _ in needed} | {"common"}
    order = kernel_order()
    out = []
    for name, inline in order.items():
        if name not in names:
            continue
        given = {f for n, f in needed if n == name}
        fmts = sorted(given - {None}, key=_variant_order)
        if None in given and all(_is_dtype_variant(f) for f in fmts):  # the int8 kernel beside int16 ones
            fmts = [None] + fmts
        fmts = fmts or [None]
        mve = f"kernels/{name}_mve.c.j2"
        for k, fmt in enumerate(fmts):
            out.append(Kernel(name, fmt, inline, f"kernels/{name}.c.j2",
                              mve if (TEMPLATES / mve).exists() else None, first=k == 0))
    unknown = names - set(order)
    if unknown:
        raise KeyError(f"no kernel template for {sorted(unknown)}")
    return out
