"""The table of TFLite operators dmxgen reads: `@tflite_op` registers each operator's mapping.

A mapping is a function `(reader, op, ins, outs)` in a module of frontends/tflite_ops/ (one module
per operator family); `reader` is frontends/tflite.py's _Reader, whose helpers the mappings share.
SUPPORTED, the support table (dmxgen/support.py) and the packed-weight reader are read from it.
"""
from __future__ import annotations

from typing import Callable

from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.BuiltinOperator import BuiltinOperator

from ..ops import SPECS

_OPNAME = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
_ACTNAME = {v: k for k, v in vars(ActivationFunctionType).items() if not k.startswith("_")}
# TFLite operator name -> (the function that maps it, the op kinds it may produce),
# filled by @tflite_op; SUPPORTED and the support table (dmxgen/support.py) are read from it.
OPERATORS: dict[str, tuple[Callable, tuple[str, ...]]] = {}
ARITY: dict[str, tuple[int, int]] = {}  # operator -> (fewest, most) inputs, from @tflite_op
# operators read outside OPERATORS, with the kinds they make: CUSTOM by _Reader.read_custom (docs/custom-ops.md)
SPECIAL: dict[str, tuple[str, ...]] = {"CUSTOM": ("custom",)}
MANY_OUTPUTS: set[str] = set()  # operators with several outputs (SPLIT): their mapping returns one op per output


def tflite_op(name: str, *kinds: str, inputs: tuple[int, int], many_outputs: bool = False) -> Callable:
    """Register a function as the mapping of TFLite operator `name` to one of `kinds`;
    `inputs`: the (fewest, most) inputs the operator takes, the ones beyond the fewest optional.
    A mapping returns (kind, attrs, inputs), or a list of (kind, attrs, inputs, outputs), one per op
    it lowers to (`many_outputs`: the operator writes several tensors, SPLIT)."""
    unknown = [k for k in kinds if k not in SPECS]
    if unknown or not kinds:
        raise ValueError(f"tflite_op({name!r}): {unknown or 'no'} op kinds")

    def decorate(method: Callable) -> Callable:
        if name in OPERATORS:
            raise ValueError(f"TFLite operator {name} is mapped twice")
        OPERATORS[name] = (method, kinds)
        ARITY[name] = inputs
        if many_outputs:
            MANY_OUTPUTS.add(name)
        return method

    return decorate
