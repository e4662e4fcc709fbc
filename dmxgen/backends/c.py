"""The C backend: a Graph -> a self-contained exported folder (docs/exported-folder.md).

Steps: lower the graph (passes), plan the arena (plan.py), resolve every op
into a kernel call with constant parameters (c_layers), encode weights
(c_weights), run the reference on test vectors, then render templates/c/
into a temporary folder that replaces OUT only when everything succeeded.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import DmxError
from ..graph import Graph
from ..passes import lower
from ..plan import plan_memory
from . import c_render, c_vectors
from .c_files import atomic_folder
from .c_layers import Layer, Options, Resolver, scratch_bytes
from .c_names import Namer, c_comment
from .c_params import CTYPES

MANIFEST = "manifest.json"
VECTORS = "test_vectors"


def tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("dmxgen")
    except Exception:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _io_info(graph: Graph, name: str, role: str) -> dict:
    t = graph.tensors[name]
    if t.dtype not in ("int8", "float32"):
        raise DmxError(f"model {role} {name!r} is {t.dtype}; the C backend takes int8 or float32")
    q = t.quant
    return {"role": role, "name": name, "shape": list(t.shape), "dtype": t.dtype, "ctype": CTYPES[t.dtype],
            "size": t.size, "scale": float(q.s) if q is not None else None,
            "zero_point": q.zp if q is not None else None}


def check_exportable(graph: Graph) -> None:
    """One input, one output, and float32 only in the caller's input/output buffers."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise DmxError(f"{graph.source}: the C backend exports models with one input and one output; "
                       f"this one has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs")
    if not graph.ops:
        raise DmxError(f"{graph.source}: the model has no operators")


def _check_float(graph: Graph, plan) -> None:
    for op in graph.ops:
        for name in [n for n in op.inputs + op.outputs if n]:
            t = graph.tensors[name]
            if t.dtype == "float32" and not t.is_const and plan.storage(name) == "arena":
                raise DmxError(f"layer {op.name!r} ({op.kind}) computes in float32 in the middle of the graph "
                               f"(tensor {name!r}); the C backend allows float only for the model's input "
                               "(first QUANTIZE) and output (last DEQUANTIZE)")


def build_layers(graph: Graph, options: Options):
    """Lowered graph -> (plan, layers)."""
    check_exportable(graph)
    scratch = {i: scratch_bytes(graph, op) for i, op in enumerate(graph.ops)}
    plan = plan_memory(graph, scratch)
    _check_float(graph, plan)
    namer = Namer()
    resolver = Resolver(graph, plan, options)
    layers = [resolver.resolve(i, op, namer(op.name)) for i, op in enumerate(graph.ops)]
    return plan, layers


def model_key(source: Path, semantics: str) -> tuple:
    """Identifies a model file and how it was loaded, for c_vectors' cache."""
    source = Path(source).resolve()
    return (str(source), sha256(source), semantics)


def export(graph: Graph, out: str | Path, *, source: str | Path | None = None, fmt: str = "auto",
           semantics: str = "tflite", min_sparsity: float = 0.5, input_files: tuple[str, ...] = (),
           n_vectors: int = 8, seed: int = 0) -> dict:
    """Write the exported folder for `graph` to `out`; return the manifest.

    `source` is the model file the graph was loaded from (its path and sha256 go into the
    manifest so that `dmxgen verify` can recompute the reference); None for a graph built
    in memory, which `verify` then checks against the stored test vectors only.
    """
    if not 0.0 <= min_sparsity <= 1.0:
        raise DmxError(f"--min-sparsity must be between 0 and 1, got {min_sparsity}")
    applied: list[str] = []
    lowered = lower(graph, applied)
    options = Options(fmt=fmt, min_sparsity=min_sparsity)
    plan, layers = build_layers(lowered, options)
    src = Path(source).resolve() if source is not None else None
    vectors = c_vectors.compute(graph, lowered, n_vectors, seed, input_files,
                                key=model_key(src, semantics) if src else None)
    sample = n_vectors if input_files else 0  # the first vector of --input, else the first random one
    source_info = {"path": str(src), "name": src.name, "sha256": sha256(src)} if src else {
        "path": None, "name": Path(graph.source).name if graph.source else "graph", "sha256": None}
    ctx = {
        "version": tool_version(), "source_name": c_comment(source_info["name"]), "fmt": fmt,
        "semantics": semantics,
        "input": _io_info(lowered, lowered.inputs[0], "input"),
        "output": _io_info(lowered, lowered.outputs[0], "output"),
        "arena_size": plan.arena_size, "alignment": plan.alignment, "layers": layers,
        "uses_in": any(r.kind == "input" for layer in layers for r in layer.args),
        "uses_out": any(r.kind == "output" for layer in layers for r in layer.args),
    }
    ctx["kernels"] = c_render.kernels_for({t for layer in layers for t in layer.templates})
    manifest = _manifest(lowered, plan, layers, ctx, source_info, semantics, min_sparsity, vectors, sample, applied)
    with atomic_folder(Path(out), MANIFEST) as tmp:
        _write(tmp, ctx, layers, vectors, sample, manifest)
    return manifest


def _write(tmp: Path, ctx: dict, layers: list[Layer], vectors: c_vectors.Vectors, sample: int, manifest: dict) -> None:
    (tmp / "headers").mkdir()
    (tmp / VECTORS).mkdir()
    files = {
        "model.h": c_render.render("model.h.j2", **ctx),
        "model.c": c_render.render("model.c.j2", **ctx),
        "kernels.h": c_render.render("kernels.h.j2", **ctx),
        "kernels.c": c_render.render("kernels.c.j2", **ctx),
        "headers/headers.h": c_render.render("headers.h.j2", layers=layers),
        "input.h": c_render.render("input.h.j2", values=vectors.inputs[sample],
                                   comment=manifest["sample"]["source"]),
        "expected.h": c_render.render("expected.h.j2", values=vectors.outputs[sample],
                                      comment=manifest["sample"]["source"]),
    }
    for layer in layers:
        if layer.struct_type or layer.arrays:
            files[f"headers/{layer.ident}.h"] = c_render.render("layer.h.j2", l=layer)
    for rel, text in files.items():
        (tmp / rel).write_text(text, encoding="ascii")
    np.save(tmp / VECTORS / "inputs.npy", np.stack(vectors.inputs), allow_pickle=False)
    np.save(tmp / VECTORS / "expected.npy", np.stack(vectors.outputs), allow_pickle=False)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _manifest(lowered: Graph, plan, layers: list[Layer], ctx: dict, source: dict, semantics: str,
              min_sparsity: float, vectors: c_vectors.Vectors, sample: int, passes: list[str]) -> dict:
    io = plan.io_bytes()
    layer_rows = []
    for layer, op in zip(layers, lowered.ops):
        row = {"index": layer.index, "name": layer.name, "c_name": layer.ident, "op": layer.kind,
               "kernel": layer.kernel, "inputs": [list(lowered.tensors[n].shape) for n in op.inputs
                                                   if n and not lowered.tensors[n].is_const],
               "output": list(lowered.tensors[op.outputs[0]].shape), "in_place": layer.index in plan.inplace,
               "scratch_bytes": scratch_bytes(lowered, op), "weight_bytes": layer.weight_bytes,
               "param_bytes": layer.param_bytes,
               "arrays": {a.symbol: a.nbytes for a in layer.arrays}}
        row.update(layer.info)
        layer_rows.append(row)
    tensors = []
    for b_index, b in enumerate(plan.buffers):
        for name in b.tensors or [f"scratch:{lowered.ops[b.scratch_of].name}"]:
            t = lowered.tensors.get(name)
            tensors.append({"name": name, "shape": list(t.shape) if t else None, "dtype": t.dtype if t else "int8",
                            "bytes": t.nbytes if t else b.size, "buffer": b_index, "storage": b.io or "arena",
                            "offset": b.offset if b.io is None else None, "first_op": b.start, "last_op": b.end})
    weights = sum(r["weight_bytes"] for r in layer_rows)
    return {
        "dmxgen_version": ctx["version"],
        "source": source,
        "format": ctx["fmt"], "semantics": semantics, "min_sparsity": min_sparsity,
        "passes": passes,
        "input": ctx["input"], "output": ctx["output"],
        "arena_size": plan.arena_size, "alignment": plan.alignment, "peak_live_bytes": plan.peak_live_bytes,
        "io_bytes": io, "peak_activation_ram": plan.arena_size + sum(io.values()),
        "weight_bytes": weights, "dense_weight_bytes": sum(r.get("dense_weight_bytes", 0) for r in layer_rows),
        "param_bytes": sum(r["param_bytes"] for r in layer_rows),
        "layers": layer_rows, "tensors": tensors,
        "test_vectors": {"inputs": f"{VECTORS}/inputs.npy", "expected": f"{VECTORS}/expected.npy",
                         "count": len(vectors.inputs), "random": vectors.random, "seed": vectors.seed,
                         "files": [Path(f).name for f in vectors.files]},
        "sample": {"index": sample, "source": f"input file {Path(vectors.files[0]).name}" if vectors.files
                   and sample >= vectors.random else f"random input #{sample} (seed {vectors.seed})"},
    }
