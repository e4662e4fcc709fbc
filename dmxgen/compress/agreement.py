"""dmxgen.save's last check: the fake-quantized model computes the codes of the graph it exports.

Each fake-quantized layer is meant to be its exported op (layers.py). A layer
whose forward drifts from the op (an inplace activation applied twice did)
makes the model the user fine-tunes differ from the one deployed, while
`dmxgen verify` still says bit-exact, since it checks the C against the graph.
So save compares every layer's output codes on the example input with the
integer reference's, and names the first layer that differs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx

from ..errors import DmxError


class DisagreementError(DmxError):
    """The fake-quantized model and its exported integer graph compute different codes."""


def layer_values(model, example) -> dict:
    """{node of model.body: its value} for one eval-mode forward on `example` (a tensor, or a tuple
    of one per input); copies, so that a
    later in-place op cannot change what a layer computed (the first differing layer is the culprit)."""
    values: dict = {}

    class _Keep(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            values[n] = out.clone() if isinstance(out, torch.Tensor) else out
            return out

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _Keep(model.body).run(*(example if isinstance(example, tuple) else (example,)))
    finally:
        model.train(was_training)
    return values


def check_agreement(model, graph, tensors: dict, reference_values: dict, example: torch.Tensor) -> None:
    """Raise DisagreementError at the first graph tensor (in graph order) whose codes differ.

    `tensors` maps body nodes to the exporter's Vals (torch_graph.graph_and_tensors);
    `reference_values` holds every tensor of `reference.run(graph, ..., keep=True)`.
    """
    ours = layer_values(model, example)
    producer = {out: op for op in graph.ops for out in op.outputs}
    seen: set[str] = set()
    for node, val in tensors.items():
        if val.name in seen or val.name not in producer:  # graph inputs, pass-throughs of a tensor seen
            continue
        seen.add(val.name)
        fq = val.graph_codes(ours[node])
        ref = np.asarray(reference_values[val.name]).astype(np.int64).reshape(fq.shape)
        if np.array_equal(fq, ref):
            continue
        op = producer[val.name]
        layer = str(node.target) if node.op == "call_module" else node.name
        diff = np.abs(fq - ref)
        raise DisagreementError(
            f"cannot save: layer {layer!r} of the fake-quantized model computes other codes than its exported "
            f"op {op.name!r} ({op.kind}): {int((diff > 0).sum())} of {diff.size} differ, by up to {int(diff.max())}; "
            "the model you train would not be the model exported")
