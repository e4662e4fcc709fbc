"""Per-layer facts about a Graph (shapes, quantization, weights), for inspect and reports."""
from __future__ import annotations

import numpy as np

from .graph import Graph


def layer_rows(graph: Graph) -> list[dict]:
    rows = []
    for i, op in enumerate(graph.ops):
        ins = [graph.tensors[n] for n in op.inputs if n and not graph.tensors[n].is_const]
        out = graph.tensors[op.outputs[0]]
        w = graph.weights(op)
        row = {
            "index": i,
            "name": op.name,
            "op": op.kind,
            "inputs": [list(t.shape) for t in ins],
            "output": list(out.shape),
            "dtype": f"{ins[0].dtype if ins else '-'}->{out.dtype}",
            "quant": _quant_kind(w) if w is not None else ("per-tensor" if out.quant is not None else "float"),
            "params": 0,
            "zeros": 0,
            "sparsity": None,
            "weight_bytes": 0,
        }
        if w is not None:
            zeros = int(np.count_nonzero(w.data == 0))
            row.update(params=int(w.data.size), zeros=zeros, sparsity=zeros / max(1, w.data.size),
                       weight_bytes=int(w.data.nbytes), weight_shape=list(w.shape),
                       stored=w.encoded.format if w.encoded is not None else "dense")
        rows.append(row)
    return rows


def _quant_kind(t) -> str:
    if t.quant is None:
        return "float"
    return f"per-channel({t.quant.scale.size})" if t.quant.per_channel else "per-tensor"


def totals(rows: list[dict]) -> dict:
    params = sum(r["params"] for r in rows)
    zeros = sum(r["zeros"] for r in rows)
    return {"ops": len(rows), "params": params, "zeros": zeros,
            "sparsity": zeros / params if params else 0.0,
            "weight_bytes": sum(r["weight_bytes"] for r in rows)}
