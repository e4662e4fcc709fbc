"""OpSpec: what one op kind is, in one place (attrs, checks, reference kernel, traits).

Every `ops/<kind>.py` subclasses OpSpec and registers it with `@register`
(dmxgen/ops/__init__.py). The graph validates each Op's `attrs` dict against
the spec's typed attrs dataclass when the Op is built, Graph.validate() runs
the spec's shape check, the reference interpreter calls the spec's kernel,
and the traits (input roles, outputs, in-place, activation dtypes) replace
the lists that used to be spread over graph, plan and reference.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, ClassVar, Literal, Union

import numpy as np

# Attribute types the validator understands (plus int, float, str, Literal, X | None).
Pair = tuple[int, int]
Quad = tuple[int, int, int, int]  # pad: top, left, bottom, right
Ints = tuple[int, ...]
Floats = tuple[float, ...]
PerChannel = Union[int, tuple[int, ...]]  # one value per tensor, or one per output channel

# Input roles: a weight is a constant the storage formats may encode (CSR, dCSR);
# a bias is an optional int32 constant; an activation is computed at run time.
ACTIVATION, WEIGHTS, BIAS = "activation", "weights", "bias"


class OpSpec:
    """Base of every op spec; a subclass sets the class attributes and overrides what differs."""

    kind: ClassVar[str]
    summary: ClassVar[str]  # one line, shown by OP_KINDS
    Attrs: ClassVar[type]  # a frozen dataclass: the op's attributes with their types
    # The targets that implement the kind besides the reference (TARGETS in ops/_support.py):
    # the declared support matrix. Each backend and frontend registers its code against the
    # kind; tests/ops/test_support.py fails when a registration and this claim disagree.
    targets: ClassVar[tuple[str, ...]] = ()

    inputs: ClassVar[tuple[str, ...]] = (ACTIVATION,)  # the role of each input, in order
    min_inputs: ClassVar[int | None] = None  # None: every input; fewer when trailing ones are optional
    variadic: ClassVar[bool] = False  # the last role repeats (concat)
    # Tensors the op writes: Graph.validate wants exactly this many, the memory plan gives each its
    # bytes, and with more than one the reference kernel gets the tuple of output Tensors and returns
    # one array per output (reference/__init__.py run_op_outputs).
    outputs: ClassVar[int] = 1
    dtypes: ClassVar[tuple[str, ...]] = ("int8",)  # activation dtypes the op supports
    # the dtypes its MVE twin (targets "c_mve") runs; the others run the scalar kernel in the MVE build
    mve_dtypes: ClassVar[tuple[str, ...]] = ("int8",)
    # Storage formats the kernels of every target read for the weights input (codecs/view.py
    # keeps the same table, since codecs import nothing; tests/ops/test_support.py holds them equal).
    weight_formats: ClassVar[tuple[str, ...]] = ()
    # Inputs that hold state across calls (an LSTM's variable tensors): constants holding their reset
    # values to the reference, a persistent region of the C arena that runs read and write (plan.py).
    state_inputs: ClassVar[tuple[int, ...]] = ()

    # -- traits ---------------------------------------------------------------
    @property
    def weight_inputs(self) -> tuple[int, ...]:
        """Indices of the inputs that are weight tensors."""
        return tuple(i for i, role in enumerate(self.inputs) if role == WEIGHTS)

    def activation_inputs(self, op) -> tuple[int, ...]:
        """Indices of the op's inputs computed at run time (every input of a variadic op)."""
        roles = self.roles(op)
        return tuple(i for i, role in enumerate(roles) if role == ACTIVATION)

    def roles(self, op) -> tuple[str, ...]:
        """The role of each of op's inputs."""
        if self.variadic and len(op.inputs) > len(self.inputs):
            return self.inputs + (self.inputs[-1],) * (len(op.inputs) - len(self.inputs))
        return self.inputs[:len(op.inputs)]

    def input_count_problem(self, op) -> str | None:
        n, most = len(op.inputs), len(self.inputs)
        least = most if self.min_inputs is None else self.min_inputs
        if self.variadic and n >= least:
            return None
        if least <= n <= most:
            return None
        want = f"{least}" if least == most else f"{least} to {most}"
        return f"expects {want}{' or more' if self.variadic else ''} inputs, got {n}"

    def inplace(self, op) -> bool:
        """May the output take the bytes of a same-shaped input that dies at this op?"""
        return False

    def activation_dtype(self, graph, op) -> str:
        """The dtype the op computes in, from its tensors (the output's, unless overridden)."""
        return graph.tensors[op.outputs[0]].dtype

    # -- attrs ----------------------------------------------------------------
    def attrs(self, op):
        """The typed view of op.attrs; a missing, unknown or mistyped key raises ValueError."""
        given = op.attrs
        hints = _hints(self.Attrs)
        fields = {f.name: f for f in dataclasses.fields(self.Attrs)}
        where = f"op {op.name!r} ({op.kind})"
        for key in given:
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
                else:
                    hint = f" (expected one of {', '.join(fields)})" if fields else f" ({op.kind} takes none)"
                raise ValueError(f"{where}: unknown attribute {key!r}{hint}")
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in given:
                raise ValueError(f"{where}: missing attribute {name!r}")
            if name in given and not _conforms(given[name], hints[name]):
                raise ValueError(f"{where}: attribute {name!r} should be {_describe(hints[name])}, "
                                 f"got {_show(given[name])}")
        return self.Attrs(**{name: given[name] for name in fields if name in given})

    # -- per-kind rules -------------------------------------------------------
    def check(self, op, ins: list, out) -> str | None:
        """Shapes and attrs against the tensors: a description of the first problem, or None."""
        return None

    def kernel_params(self, graph, op) -> dict | None:
        """The constants the kernel runs with, the same numbers for every target, or None.

        A dict of name -> int, numpy array (a const table), `graph.loops.Walk` of (src, dst) (a
        strided copy of input k into the output, k the walk's position among the walks) or a
        list of Walks. The C backend prints it into the struct `dmx_<kind>_t` that
        templates/c/kernels/<kind>.c.j2 declares and calls `dmx_<kind>_<dtype>`; the HLS backend
        prints it into the config of templates/hls/kernels/dmx_<kind>.h and calls
        `dmx::<kind><data_T, res_T, CFG>`. So a kind with kernel_params needs no backend code of
        its own. None (the default): the backends have hand-written code for the kind
        (backends/c_layers.py, backends/hls_ops.py), for kernels that choose weight formats or scratch.
        """
        return None

    @property
    def printed_from_params(self) -> bool:
        """Do the backends print this kind from `kernel_params` (no per-kind backend code)?"""
        return type(self).kernel_params is not OpSpec.kernel_params

    def reference(self, op, args: list, out_t) -> np.ndarray:
        """The golden kernel: numpy values of the inputs (None for an absent one) -> the output
        (`out_t` is the output Tensor; for outputs > 1 the tuple of them, and it returns one array each)."""
        raise NotImplementedError(f"{self.kind}: no reference kernel")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _is_int(v) -> bool:
    if isinstance(v, np.ndarray):
        return v.ndim == 0 and v.dtype.kind in "iu"
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    if isinstance(v, np.ndarray):
        return v.ndim == 0 and v.dtype.kind in "iuf"
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _conforms(v, hint) -> bool:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return v is None
    if origin in (Union, types.UnionType):
        return any(_conforms(v, h) for h in typing.get_args(hint))
    if origin is Literal:
        return isinstance(v, str) and v in typing.get_args(hint)
    if hint is int:
        return _is_int(v)
    if hint is float:
        return _is_real(v)
    if hint is str:
        return isinstance(v, str)
    if origin is tuple:
        args = typing.get_args(hint)
        repeated = len(args) == 2 and args[1] is Ellipsis
        if isinstance(v, np.ndarray):
            if v.ndim == 0:
                return False
            if repeated and v.ndim == 1 and args[0] in (int, float):
                return v.dtype.kind in ("iu" if args[0] is int else "iuf")
        elif not isinstance(v, (tuple, list)):
            return False
        items = list(v)
        if repeated:
            return all(_conforms(x, args[0]) for x in items)
        return len(items) == len(args) and all(_conforms(x, h) for x, h in zip(items, args))
    raise TypeError(f"attribute type {hint!r} is not one the validator knows")


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "None"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a sequence of {_describe(args[0])}"
        return f"a tuple of {len(args)} ({', '.join(_describe(a) for a in args)})"
    return hint.__name__


def _show(v) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
