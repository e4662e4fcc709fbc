"""Elementwise functions that become 256-entry integer lookup tables.

An int8 tensor takes only 256 values, so any elementwise function of it is
exactly a table. `approximation_function` in the config says which function a
layer's table holds: NONE (the layer's own function), LUT (declare a custom
module elementwise and tabulate it), or LUT(NAME) for a named function here or
one added with `register_function`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .formats import normalize

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "GELU": F.gelu,
    "GELU_TANH": lambda x: F.gelu(x, approximate="tanh"),
    "SILU": F.silu,
    "TANH": torch.tanh,
    "SIGMOID": torch.sigmoid,
    "HARDSWISH": F.hardswish,
    "HARDSIGMOID": F.hardsigmoid,
    "MISH": F.mish,
    "SOFTPLUS": F.softplus,
    "ELU": F.elu,
    "RELU": F.relu,
}

_LUT = re.compile(r"^LUT(?:\(([A-Z0-9_]+)\))?$")


def register_function(name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Make LUT(NAME) available in configs; fn maps a float tensor elementwise."""
    FUNCTIONS[name.upper()] = fn


@dataclass(frozen=True)
class Approximation:
    """kind: none (keep the layer's function) | lut (tabulate `name`, or the layer itself when name is '')."""

    kind: str
    name: str = ""

    def spelled(self) -> str:
        return "NONE" if self.kind == "none" else (f"LUT({self.name})" if self.name else "LUT")


NONE = Approximation("none")


def parse_approximation(text) -> Approximation:
    s = normalize(text, "NONE, LUT or LUT(NAME)")
    if s == "NONE":
        return NONE
    m = _LUT.match(s)
    if not m:
        if s in FUNCTIONS:
            return Approximation("lut", s)
        raise ValueError(f"malformed approximation function {text!r}; expected NONE, LUT or LUT(NAME) "
                         f"with NAME one of {', '.join(sorted(FUNCTIONS))}")
    name = m.group(1) or ""
    if name and name not in FUNCTIONS:
        raise ValueError(f"{text!r}: unknown function {name}; known: {', '.join(sorted(FUNCTIONS))} "
                         "(add one with dmxgen.compress.register_function)")
    return Approximation("lut", name)


# Module classes and functions that are elementwise and become tables as they are.
ELEMENTWISE_MODULES = ("GELU", "SiLU", "Tanh", "Sigmoid", "Hardswish", "Hardsigmoid", "Mish", "Softplus", "ELU",
                       "LeakyReLU", "Tanhshrink", "Softsign", "CELU", "SELU", "LogSigmoid")
ELEMENTWISE_FUNCTIONS = {F.gelu, F.silu, torch.tanh, torch.sigmoid, F.hardswish, F.hardsigmoid, F.mish,
                         F.softplus, F.elu, F.leaky_relu, torch.exp, F.logsigmoid, F.selu, F.celu, F.softsign,
                         torch.nn.functional.tanhshrink, torch.abs, torch.neg, torch.square, torch.erf}
ELEMENTWISE_METHODS = {"sigmoid", "tanh", "exp", "abs", "neg", "square", "erf"}
