"""custom: a TFLite CUSTOM operator the user implements, in Python for the reference and in C for the build.

TFLite models may hold operators that are not builtins (custom_code "MyOp"); dmxgen refuses
them by name unless the user registers an implementation (docs/custom-ops.md): a numpy
function, which the reference runs, and a C file defining `dmx_custom_<name>`, which the export
copies next to model.c. The registry lives here, with the spec, so that the reference and the
backends find it without importing the user's plugin themselves (dmxgen/custom.py loads plugins).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DmxError
from . import register
from ._spec import ACTIVATION, Ints, OpSpec

C_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class CustomOp:
    """A user's implementation of the TFLite custom operator `name`."""

    name: str  # the custom_code in the .tflite
    reference: Callable  # (inputs: list[np.ndarray], options: bytes, output: Tensor) -> np.ndarray
    c_source: Path  # a C file defining dmx_custom_<ident>(const dmx_custom_t *, const void *const *, void *)

    @property
    def ident(self) -> str:
        """The C identifier part of the kernel name: the custom code with other characters as '_'."""
        return re.sub(r"[^A-Za-z0-9_]", "_", self.name)


CUSTOM_OPS: dict[str, CustomOp] = {}  # custom_code -> implementation, filled by dmxgen.custom.custom_op


def registered(name: str) -> CustomOp | None:
    return CUSTOM_OPS.get(name)


@dataclass(frozen=True)
class CustomAttrs:
    name: str  # the custom_code
    options: Ints = ()  # the operator's custom_options bytes, as TFLite stores them (often a flexbuffer)


@register
class Custom(OpSpec):
    kind = "custom"
    summary = "a TFLite CUSTOM operator implemented by the user (Python reference + C kernel)"
    Attrs = CustomAttrs
    targets = ("c", "tflite")
    inputs = (ACTIVATION,)
    variadic = True
    dtypes = ("int8", "int16", "float32")

    def check(self, op, ins, out):
        if registered(op.a.name) is None:
            return f"custom operator {op.a.name!r} has no registered implementation (docs/custom-ops.md)"
        if any(not 0 <= int(b) <= 255 for b in op.a.options):
            return "custom options must be bytes"
        return None

    def reference(self, op, args, out_t):
        impl = registered(op.a.name)
        if impl is None:
            raise DmxError(f"custom operator {op.a.name!r} has no registered implementation")
        result = np.asarray(impl.reference(list(args), bytes(int(b) for b in op.a.options), out_t))
        if result.size != out_t.size:
            raise DmxError(f"custom operator {op.a.name!r}: its reference returned {result.size} values, "
                             f"the output {list(out_t.shape)} holds {out_t.size}")
        if result.dtype != np.dtype(out_t.dtype):
            raise DmxError(f"custom operator {op.a.name!r}: its reference returned {result.dtype}, "
                             f"the output is {out_t.dtype}")
        return result.reshape(out_t.shape)
