"""Elementwise functions that become 256-entry integer lookup tables.

An int8 tensor takes only 256 values, so any elementwise function of it is
exactly a table. `approximation_function` in the config says which function a
layer's table holds: NONE (the layer's own function), LUT (declare a custom
module elementwise and tabulate it), or LUT(NAME) for a named function here or
one added with `register_function`. PSA{E}, LERP_PSA{G,R} and SPLINE{K,R} swap the
layer's activation module for a learnable per-feature one (compress/psa.py).
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
    """kind: none (keep the layer's function) | lut (tabulate `name`, or the layer itself when name is '')
    | learnable (swap the activation for PSA / LERP_PSA / SPLINE with `params`: compress/psa.py)."""

    kind: str
    name: str = ""
    params: tuple = ()

    def spelled(self) -> str:
        if self.kind == "learnable":
            return f"{self.name}{{{','.join(f'{p:g}' for p in self.params)}}}"
        return "NONE" if self.kind == "none" else (f"LUT({self.name})" if self.name else "LUT")


NONE = Approximation("none")


# learnable activations: name -> (parameter names, defaults); PSA{E}, LERP_PSA{G,R}, SPLINE{K,R}
LEARNABLE = {"PSA": (("kernels",), (8,)), "LERP_PSA": (("points", "span"), (64, 4.0)),
             "SPLINE": (("knots", "span"), (21, 4.0))}
_LEARNABLE = re.compile(r"^(PSA|LERP_PSA|SPLINE)(?:\{([0-9.,\s]*)\})?$")


def _parse_learnable(text: str, m: re.Match) -> Approximation:
    name, body = m.group(1), m.group(2)
    keys, defaults = LEARNABLE[name]
    given = [v.strip() for v in body.split(",")] if body and body.strip() else []
    if len(given) > len(keys):
        raise ValueError(f"{text!r}: {name} takes at most {len(keys)} values ({', '.join(keys)})")
    try:
        values = [float(v) for v in given]
    except ValueError:
        raise ValueError(f"{text!r}: {name}'s values must be numbers ({', '.join(keys)})") from None
    params = tuple(values) + defaults[len(values):]
    counts = [int(p) for p, k in zip(params, keys) if k in ("kernels", "points", "knots")]
    if any(c != p for c, p in zip(counts, params)) or any(c < 2 for c in counts):
        raise ValueError(f"{text!r}: {keys[0]} must be a whole number of at least 2")
    if name == "LERP_PSA" and int(params[0]) not in (2, 4, 8, 16, 32, 64, 128):
        raise ValueError(f"{text!r}: LERP_PSA's grid points must be a power of two from 2 to 128 "
                         "(the integer table interpolates between them)")
    if name == "SPLINE" and int(params[0]) % 2 == 0:
        raise ValueError(f"{text!r}: SPLINE needs an odd number of knots")
    if len(params) > 1 and not params[1] > 0:
        raise ValueError(f"{text!r}: the span R must be positive")
    return Approximation("learnable", name, tuple(int(p) if k in ("kernels", "points", "knots") else p
                                                    for p, k in zip(params, keys)))


def parse_approximation(text) -> Approximation:
    s = normalize(text, "NONE, LUT, LUT(NAME), PSA{E}, LERP_PSA{G,R} or SPLINE{K,R}")
    if s == "NONE":
        return NONE
    learnable = _LEARNABLE.match(s)
    if learnable:
        return _parse_learnable(str(text), learnable)
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
