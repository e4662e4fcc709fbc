"""Per-op rules checked by Graph.validate() for any frontend.

The rules every op shares (outputs, number of inputs, activation dtype) are
here; each kind's own shape rules are its spec's `check` (dmxgen/ops/<kind>.py).
"""
from __future__ import annotations


def check_op(g, op) -> str | None:
    """Return a description of the first problem, or None."""
    t = g.tensors
    spec = op.spec
    ins = [t[n] if n else None for n in op.inputs]
    outs = [t[n] for n in op.outputs]
    if not outs:
        return "has no output"
    if len(outs) > spec.outputs:
        return f"has {len(outs)} outputs, {op.kind} writes {spec.outputs}"
    problem = spec.input_count_problem(op)
    if problem:
        return problem
    problem = spec.check(op, ins, outs[0])
    if problem:
        return problem
    dtype = spec.activation_dtype(g, op)
    if dtype not in spec.dtypes:
        return f"{dtype} activations are not supported (supported: {', '.join(spec.dtypes)})"
    return None
