"""The integer reference of an early-exit model: entries in order, stop at the first accepting head."""
from __future__ import annotations

import numpy as np

from ..errors import DmxError
from ..graph import Graph
from ..graph.early_exit import exit_outputs
from ..graph.exit_policy import ExitPolicy, accepts
from . import run_entry


def run_early_exit(graph: Graph, policy: ExitPolicy, codes) -> tuple[int, np.ndarray]:
    """(exit taken, its int8 logits) for one input, as dmx_model_run_ee returns them: exit k for
    the k-th head, the number of heads for the final classifier. Later entries never run."""
    outputs = exit_outputs(graph)
    heads = len(outputs) - 1
    if len(policy.thresholds) != heads:
        raise DmxError(f"the early-exit policy has {len(policy.thresholds)} threshold(s) for {heads} exit(s)")
    state: dict[str, np.ndarray] = {}
    for k, (name, out) in enumerate(zip(graph.entries, outputs)):
        logits = run_entry(graph, name, [codes] if k == 0 else [], state)[out]
        if k == heads:
            return k, logits
        scale = float(graph.tensors[out].quant.s)
        if accepts(policy.kind, logits.reshape(-1), policy.thresholds[k], scale):
            return k, logits
    raise AssertionError("unreachable: the final entry always returns")
