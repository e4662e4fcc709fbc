"""Several inputs and outputs of a PyTorch model, and what the integer graph calls them.

The graph's inputs are forward()'s positional parameters, in order, named after
them; its outputs are the tensors forward() returns: one tensor (named after
the layer that computes it, as before), a tuple or list of tensors (`output0`,
`output1`, ...) or a dict of them (named by the keys, which must be C
identifiers). Everything else (keyword-only or variadic parameters, defaults,
nested containers, returned sizes or constants, an input returned as it is,
one tensor returned twice) is one line naming the parameter or the output.
"""
from __future__ import annotations

import inspect
import re

import torch
import torch.fx as fx

from ..errors import DmxError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_signature(net: torch.nn.Module, source: str) -> None:
    """Refuse forward() parameters that are not plain positional ones: each becomes a graph input."""
    try:
        params = inspect.signature(net.forward).parameters.values()
    except (TypeError, ValueError):  # a builtin forward: fx decides
        return
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            why = f"*{p.name} takes any number of inputs; give each input its own parameter"
        elif p.kind is p.VAR_KEYWORD:
            why = f"**{p.name} takes keyword inputs; give each input its own positional parameter"
        elif p.kind is p.KEYWORD_ONLY:
            why = f"{p.name!r} is keyword-only; graph inputs are positional parameters"
        elif p.default is not p.empty:
            why = (f"{p.name!r} has a default ({p.default!r}); every parameter is a graph input, "
                   "so it cannot be left out")
        else:
            continue
        raise DmxError(f"{source}: forward() parameter {why}")


def input_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "placeholder"]


def returned(gm: fx.GraphModule):
    """forward()'s return value as fx nodes (a node, or a tuple / list / dict of them)."""
    return next(n for n in gm.graph.nodes if n.op == "output").args[0]


def output_names(out) -> list[tuple[str | None, object]]:
    """[(graph name or None, leaf)] of a returned structure, in order: None for a single tensor
    (it keeps its layer's name), `output<i>` for tuple and list positions, the key for a dict."""
    if isinstance(out, dict):
        return [(k, v) for k, v in out.items()]
    if isinstance(out, (tuple, list)):
        return [(f"output{i}", v) for i, v in enumerate(out)]
    return [(None, out)]


def check_outputs(gm: fx.GraphModule, kind: dict, source: str) -> None:
    """Refuse a return value the graph cannot name as distinct tensor outputs (`kind`: the traced
    nodes' kinds, trace.classify's; "shape" is a size or an int)."""
    inputs = set(input_nodes(gm))
    seen: dict = {}
    out = returned(gm)
    if isinstance(out, dict):
        for k in out:
            if not isinstance(k, str) or not _IDENT.match(k):
                raise DmxError(f"{source}: forward() returns a dict with key {k!r}; the keys name the model's "
                               "outputs and must be C identifiers ([A-Za-z_][A-Za-z0-9_]*)")
    for name, leaf in output_names(out):
        where = "the output" if name is None else f"output {name!r}"
        if isinstance(leaf, (tuple, list, dict)):
            raise DmxError(f"{source}: {where} is a {type(leaf).__name__}; nested outputs are not supported, "
                           "return one flat tuple, list or dict of tensors")
        if not isinstance(leaf, fx.Node) or kind.get(leaf) in (None, "shape", "output"):
            what = type(leaf).__name__ if not isinstance(leaf, fx.Node) else f"{leaf.name!r}, not a tensor"
            raise DmxError(f"{source}: {where} is {what}; every output must be a tensor computed by a layer")
        if leaf in inputs:
            raise DmxError(f"{source}: {where} is the input {leaf.target!r} itself; an output needs a layer "
                           "between it and the inputs")
        if leaf in seen:
            raise DmxError(f"{source}: {where} is the same tensor as {seen[leaf]}; return each tensor once")
        seen[leaf] = where


def flatten(value) -> list:
    """A returned structure's tensors in graph output order (see output_names)."""
    return [v for _, v in output_names(value)]


def like(structure, leaves: list):
    """`leaves` in the shape of `structure` (a tensor, a tuple / list, a dict), for output_codes."""
    if isinstance(structure, dict):
        return dict(zip(structure, leaves))
    if isinstance(structure, (tuple, list)):
        return tuple(leaves)
    return leaves[0]


def examples(gm: fx.GraphModule, given: tuple, what: str = "the example input") -> tuple[torch.Tensor, ...]:
    """The example inputs, one tensor per graph input, batch 1, float."""
    names = [str(n.target) for n in input_nodes(gm)]
    if len(given) == 1 and isinstance(given[0], (tuple, list)):
        given = tuple(given[0])
    if len(given) != len(names):
        raise DmxError(f"the model takes {len(names)} input(s) ({', '.join(names)}); {what} has {len(given)}"
                       + ("; pass them as a tuple" if len(names) > 1 else ""))
    for n, x in zip(names, given):
        if not isinstance(x, torch.Tensor):
            raise DmxError(f"{what} for {n!r} must be a torch.Tensor, got {type(x).__name__}")
    return tuple(x[:1].float() for x in given)


def positional(gm: fx.GraphModule, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """model(a, b=t) as model(a, t): inputs given by parameter name put in forward()'s order, so that
    calibration's export check and the recorded shapes see every input (other keywords stay)."""
    names = [str(n.target) for n in input_nodes(gm)][len(args):]
    if not kwargs or not set(names) <= set(kwargs):
        return args, kwargs
    return args + tuple(kwargs[n] for n in names), {k: v for k, v in kwargs.items() if k not in names}


def check_inputs(gm: fx.GraphModule, given: tuple, what: str) -> tuple:
    """`given` as one tensor per graph input (any batch), or a one-line refusal naming the inputs."""
    names = [str(n.target) for n in input_nodes(gm)]
    if len(given) != len(names) or not all(isinstance(x, torch.Tensor) for x in given):
        kinds = ", ".join(type(x).__name__ for x in given) or "nothing"
        raise DmxError(f"{what} needs {len(names)} tensor(s), one per input ({', '.join(names)}); got {kinds}")
    return given
