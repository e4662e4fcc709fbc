"""Compare the numpy reference with a golden interpreter, output by output and layer by layer."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import reference
from .goldens import run_golden_layers
from .graph import Graph
from .progress import progress


def diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(max absolute difference, number of differing values)."""
    a = np.asarray(a).astype(np.float64).reshape(-1)
    b = np.asarray(b).astype(np.float64).reshape(-1)
    if a.size != b.size:
        return float("inf"), max(a.size, b.size)
    d = np.abs(a - b)
    return (float(d.max()) if d.size else 0.0), int(np.count_nonzero(d))


def verify_model(graph: Graph, path: str | Path, input_sets: list[list[np.ndarray]], golden: str = "tflite",
                 per_layer: bool = True) -> dict:
    outputs = {n: {"name": n, "max_abs_diff": 0.0, "mismatches": 0, "values": 0} for n in graph.outputs}
    layers = {op.name: {"name": op.name, "op": op.kind, "max_abs_diff": 0.0, "mismatches": 0} for op in graph.ops}
    compare_layers = per_layer and golden == "tflite"
    answers = reference.run_each(graph, input_sets, keep=compare_layers)  # batched, as one run per set
    for inputs, values in progress(zip(input_sets, answers), total=len(input_sets), desc="verify", unit="input",
                                   leave=False):
        # isolated: a model that crashes the interpreter must not take dmxgen down with it
        gold, every = run_golden_layers(path, inputs, golden, n_outputs=len(graph.outputs), layers=compare_layers,
                                        isolate=True)
        for name, g in zip(graph.outputs, gold):
            m, k = diff(values[name], g)
            o = outputs[name]
            o["max_abs_diff"] = max(o["max_abs_diff"], m)
            o["mismatches"] += k
            o["values"] += int(np.size(g))
        if compare_layers:
            for op in graph.ops:
                origin = graph.tensors[op.outputs[0]].origin
                if origin in every:
                    m, k = diff(values[op.outputs[0]], every[origin])
                    layer = layers[op.name]
                    layer["max_abs_diff"] = max(layer["max_abs_diff"], m)
                    layer["mismatches"] += k
    worst = max((o["max_abs_diff"] for o in outputs.values()), default=0.0)
    result = {
        "model": str(path),
        "golden": golden,
        "inputs": len(input_sets),
        "bit_exact": all(o["mismatches"] == 0 for o in outputs.values()),
        "max_abs_diff": int(worst) if float(worst).is_integer() else worst,
        "outputs": list(outputs.values()),
        "layers": list(layers.values()) if compare_layers else [],
    }
    return result
