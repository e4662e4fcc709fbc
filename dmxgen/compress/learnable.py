"""Swap activation modules for learnable ones where the config asks (approximation_function:
PSA{E}, LERP_PSA{G,R}, SPLINE{K,R}), before the network is traced.

Only modules can be swapped (nn.ReLU, nn.GELU, ...): a functional call such as F.relu
has no module to replace, so the rule must name a module (by name, re: or type:). The
swap works on a copy of the network: the caller's own is left alone.
"""
from __future__ import annotations

import copy

from torch import nn

from ..errors import DmxError
from .config import Rule
from .psa import LazyLearnable
from .trace import module_matches


def with_learnable_activations(net: nn.Module, rules: list[Rule]) -> nn.Module:
    """`net` itself when no rule asks for a learnable activation, else a copy with each matching
    module a LazyLearnable started from it (the last matching rule wins, as for every field)."""
    wanted = [r for r in sorted(rules, key=lambda r: r.precedence)
              if r.settings.get("approximation") is not None and r.settings["approximation"].kind == "learnable"]
    if not wanted:
        return net
    swaps = {}
    for name, module in net.named_modules():
        if not name or isinstance(module, LazyLearnable):
            continue
        for r in wanted:
            if module_matches(r.selector, name, module):
                swaps[name] = r.settings["approximation"]
    if not swaps:
        sel = ", ".join(repr(r.selector) for r in wanted)
        raise DmxError(f"approximation_function {wanted[0].settings['approximation'].spelled()} ({sel}) matches "
                       "no module; a learnable activation replaces a module such as nn.ReLU, not a function call")
    for name in swaps:
        module = net.get_submodule(name)
        if any(True for _ in module.parameters()) or list(module.children()):
            raise DmxError(f"layer {name!r} ({type(module).__name__}): a learnable activation replaces an "
                           "elementwise activation module, not a layer with parameters or children")
    net = copy.deepcopy(net)
    for name, ap in swaps.items():
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, LazyLearnable(ap.name, ap.params, getattr(parent, child)))
    return net
