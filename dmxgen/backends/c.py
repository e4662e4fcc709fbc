"""The C backend: a prepared graph -> a self-contained exported folder (docs/exported-folder.md).

dmxgen/pipeline.py lowers the graph, plans the arena (with this backend's
scratch_bytes) and makes the test vectors; here every op is resolved into a
kernel call with constant parameters (c_layers), weights are stored as
the storage policy chose (codecs/policy.py) and templates/c/ rendered into the folder the caller commits.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..codecs.policy import StoragePolicy
from ..errors import DmxError
from ..graph import Graph
from ..ops.gather import index_bound
from ..plan import Plan, plan_memory
from . import c_render
from .c_layers import Layer, Ref, Resolver, scratch_bytes
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


def _io_info(graph: Graph, name: str, role: str, param: str) -> dict:
    t = graph.tensors[name]
    indices = t.dtype in ("int32", "int64") and (role == "output" or index_bound(graph, name) is not None)
    if t.dtype not in ("int8", "int16", "float32") and not indices:
        raise DmxError(f"model {role} {name!r} is {t.dtype}; the C backend takes int8, int16 or float32 "
                       "(and int32 or int64 indices: outputs of ARG_MAX / ARG_MIN, inputs of GATHER)")
    q = t.quant
    return {"role": role, "name": name, "shape": list(t.shape), "dtype": t.dtype, "ctype": CTYPES[t.dtype],
            "elem_bytes": np.dtype(t.dtype).itemsize,
            "size": t.size, "scale": float(q.s) if q is not None else None,
            "zero_point": q.zp if q is not None else None, "param": param}


def io_params(graph: Graph) -> tuple[list[str], list[str]]:
    """C parameter names of dmx_model_run: `in`, `out` for one input and one output (the
    original API), else `in_<name>` per input and `out_<name>` per output, in graph order."""
    if len(graph.inputs) == 1 and len(graph.outputs) == 1:
        return ["in"], ["out"]
    namer = Namer()
    return ([f"in_{namer(n)}" for n in graph.inputs], [f"out_{namer(n)}" for n in graph.outputs])


def check_exportable(graph: Graph) -> None:
    """At least one operator; every graph input and output is a distinct tensor the caller passes."""
    if not graph.ops:
        raise DmxError(f"{graph.source}: the model has no operators")
    if not graph.inputs or not graph.outputs:
        raise DmxError(f"{graph.source}: the model has {len(graph.inputs)} inputs and {len(graph.outputs)} "
                       "outputs; the C backend needs at least one of each")
    both = [n for n in graph.outputs if n in graph.inputs]
    if both:
        raise DmxError(f"{graph.source}: tensor {both[0]!r} is both a model input and output; "
                       "the C backend needs an operator between them")
    if len(set(graph.outputs)) != len(graph.outputs):
        raise DmxError(f"{graph.source}: a tensor is listed twice among the model outputs")


def _check_float(graph: Graph, plan) -> None:
    for op in graph.ops:
        for name in [n for n in op.inputs + op.outputs if n]:
            t = graph.tensors[name]
            if t.dtype == "float32" and not t.is_const and plan.storage(name) == "arena":
                raise DmxError(f"layer {op.name!r} ({op.kind}) computes in float32 in the middle of the graph "
                               f"(tensor {name!r}); the C backend allows float only for the model's input "
                               "(first QUANTIZE) and output (last DEQUANTIZE)")


def build_layers(graph: Graph, storage: StoragePolicy, plan: Plan | None = None):
    """Lowered graph (and its arena plan, made here when not given) -> (plan, layers), the weights
    stored as `storage` decides."""
    check_exportable(graph)
    if plan is None:
        plan = plan_memory(graph, {i: scratch_bytes(graph, op) for i, op in enumerate(graph.ops)})
    _check_float(graph, plan)
    namer = Namer()
    resolver = Resolver(graph, plan, storage)
    layers = [resolver.resolve(i, op, namer(op.name)) for i, op in enumerate(graph.ops)]
    _name_io_refs(graph, plan, layers)
    return plan, layers


def _name_io_refs(graph: Graph, plan: Plan, layers: list[Layer]) -> None:
    """Point every reference to a caller's buffer at its dmx_model_run parameter."""
    ins, outs = io_params(graph)
    param = {}
    for names, params in ((graph.inputs, ins), (graph.outputs, outs)):
        for name, p in zip(names, params):
            for alias in plan.buffer(name).tensors:  # a reshape that aliases the buffer
                param[alias] = p

    done: set[int] = set()

    def fix(r: Ref | None) -> None:
        if r is None or id(r) in done:  # a Ref may be shared (a layer's out is also among its args)
            return
        done.add(id(r))
        if r.kind in ("input", "output"):
            if r.symbol not in param:
                raise DmxError(f"C backend: a layer reads the caller's {r.kind} buffer through "
                               f"{r.symbol or 'an unnamed tensor'!r}, which is no model {r.kind}")
            r.symbol = param[r.symbol]
        for x in r.items:
            fix(x)

    for layer in layers:
        for r in layer.args:
            fix(r)
        fix(layer.out)


def write(prepared, folder: Path) -> dict:
    """Print `prepared` (dmxgen.pipeline.Prepared, planned with this backend's scratch_bytes) into
    `folder` (an empty folder the caller commits); return the manifest."""
    lowered, storage = prepared.lowered, prepared.storage
    plan, layers = build_layers(lowered, storage, prepared.plan)
    vectors, sample = prepared.vectors, prepared.sample  # after the refusals above: the reference is slow
    ins, outs = io_params(lowered)
    inputs = [_io_info(lowered, n, "input", p) for n, p in zip(lowered.inputs, ins)]
    outputs = [_io_info(lowered, n, "output", p) for n, p in zip(lowered.outputs, outs)]
    for k, io in enumerate(inputs + outputs):
        io["index"] = k if k < len(inputs) else k - len(inputs)
        io["label"] = c_comment(io["name"]).replace('"', "'")  # safe in a comment and a string literal
    used = {r.symbol for layer in layers for r in _refs(layer) if r.kind in ("input", "output")}
    for io in inputs + outputs:
        io["used"] = io["param"] in used
    single = len(inputs) == 1 and len(outputs) == 1
    ctx = {
        "version": tool_version(), "source_name": c_comment(prepared.source["name"]), "fmt": storage.fmt,
        "semantics": prepared.semantics, "single_io": single, "inputs": inputs, "outputs": outputs,
        "input": inputs[0], "output": outputs[0],
        "arena_size": plan.arena_size, "alignment": plan.alignment, "layers": layers,
        "uses_in": inputs[0]["used"], "uses_out": outputs[0]["used"],
        "output_words": sum((io["size"] * io["elem_bytes"] + 3) // 4 for io in outputs),
        "status": any(layer.info.get("status") for layer in layers),  # a GATHER may return DMX_ERROR_INDEX
    }
    ctx["entries"] = entry_functions(lowered, layers, inputs, outputs)
    ctx["states"] = state_regions(lowered, plan)
    ctx["kernels"] = c_render.kernels_for({t for layer in layers for t in layer.templates})
    manifest = _manifest(lowered, plan, layers, ctx, prepared.source, prepared.semantics, storage.min_sparsity,
                         vectors, sample, prepared.passes)
    _write(Path(folder), ctx, layers, vectors, sample, manifest)
    return manifest


def entry_functions(graph: Graph, layers: list[Layer], inputs: list[dict], outputs: list[dict]) -> list[dict]:
    """One dmx_model_<entry> per declared entry point (none for the default one): its layers, and
    the caller's buffers it takes (the graph's parameter names, entry inputs then outputs)."""
    if not graph.has_entry_points:
        return []
    io = {x["name"]: x for x in inputs + outputs}
    functions = []
    for name, indices in graph.entry_ops().items():
        entry = graph.entries[name]
        mine = [layers[i] for i in indices]
        params = [io[t] for t in entry.inputs + entry.outputs]
        refs = [r for layer in mine for r in _refs(layer)]
        used = {r.symbol for r in refs if r.kind in ("input", "output")}
        stray = used - {p["param"] for p in params}
        if stray:  # the plan keeps cross-entry tensors in the arena: this is a bug, not bad input
            raise DmxError(f"C backend: entry {name!r} reaches {sorted(stray)[0]!r}, a caller's buffer of another call")
        functions.append({"name": name, "layers": mine, "params": params,
                          "unused": [p["param"] for p in params if p["param"] not in used],
                          "uses_arena": any(r.kind == "arena" for r in refs),
                          "status": any(layer.info.get("status") for layer in mine),
                          "first_layer": indices[0], "last_layer": indices[-1]})
    return functions


def state_regions(graph: Graph, plan: Plan) -> list[dict]:
    """The plan's persistent buffers (LSTM states) as model.c's dmx_model_reset_state fills them: each
    tensor's reset value (TFLite's: zero point or zero) is one repeated byte, written with memset."""
    regions = []
    for b in plan.state_buffers:
        t = graph.tensors[b.tensors[0]]
        raw = np.ascontiguousarray(t.data, dtype=t.dtype).tobytes()
        if len(set(raw)) > 1:
            raise DmxError(f"C backend: state tensor {t.name!r} does not reset to one repeated byte")
        regions.append({"label": c_comment(t.name), "offset": b.offset, "bytes": b.size, "fill": raw[0] if raw else 0})
    return regions


def _refs(layer: Layer):
    todo = list(layer.args) + ([layer.out] if layer.out is not None else [])
    while todo:
        r = todo.pop()
        yield r
        todo += r.items


def _write(tmp: Path, ctx: dict, layers: list[Layer], vectors, sample: int, manifest: dict) -> None:
    (tmp / "headers").mkdir()
    (tmp / VECTORS).mkdir()
    comment = manifest["sample"]["source"]
    one = 0 if ctx["single_io"] else slice(None)  # one array, or the list of them
    files = {
        "model.h": c_render.render("model.h.j2", **ctx),
        "model.c": c_render.render("model.c.j2", **ctx),
        **c_render.kernel_files(ctx),
        "headers/headers.h": c_render.render("headers.h.j2", layers=layers),
        "input.h": c_render.render("input.h.j2", single_io=ctx["single_io"], tensors=ctx["inputs"],
                                   values=vectors.inputs[sample][one], comment=comment),
        "expected.h": c_render.render("expected.h.j2", single_io=ctx["single_io"], tensors=ctx["outputs"],
                                      values=vectors.outputs[sample][one], comment=comment),
    }
    for layer in layers:
        if layer.struct_type or layer.arrays:
            files[f"headers/{layer.ident}.h"] = c_render.render("layer.h.j2", l=layer)
    for rel, text in files.items():
        (tmp / rel).write_text(text, encoding="ascii")
    for layer in layers:  # the user's kernels of custom operators (docs/custom-ops.md), as they wrote them
        if "custom_source" in layer.info:
            (tmp / f"custom_{layer.templates[0][1]}.c").write_bytes(Path(layer.info["custom_source"]).read_bytes())
    save_vectors(tmp, manifest["test_vectors"], ctx["inputs"], ctx["outputs"], vectors)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def vector_files(n_inputs: int, n_outputs: int) -> tuple[str, str]:
    """test_vectors/inputs.npy and expected.npy (a stack of the one tensor) for one input and one
    output; .npz files with one stack per tensor, named by it, when there are several."""
    ext = "npy" if n_inputs == 1 and n_outputs == 1 else "npz"
    return f"{VECTORS}/inputs.{ext}", f"{VECTORS}/expected.{ext}"


def save_vectors(folder: Path, tv: dict, inputs: list[dict], outputs: list[dict], vectors) -> None:
    for rel, infos, sets in ((tv["inputs"], inputs, vectors.inputs), (tv["expected"], outputs, vectors.outputs)):
        stacks = {io["name"]: np.stack([s[k] for s in sets]) for k, io in enumerate(infos)}
        if rel.endswith(".npy"):
            np.save(folder / rel, next(iter(stacks.values())), allow_pickle=False)
        else:
            np.savez(folder / rel, **stacks)


def load_vectors(folder: Path, rel: str, infos: list[dict], n: int) -> list[list[np.ndarray]]:
    """What save_vectors wrote: the first n sets, one array per tensor of `infos` (flattened)."""
    if rel.endswith(".npy"):
        stacks = [np.load(Path(folder) / rel, allow_pickle=False)]
    else:
        with np.load(Path(folder) / rel, allow_pickle=False) as z:
            missing = [io["name"] for io in infos if io["name"] not in z.files]
            if missing:
                raise DmxError(f"{folder}/{rel}: no vectors for tensor {missing[0]!r}")
            stacks = [z[io["name"]] for io in infos]
    count = min(len(s) for s in stacks)
    return [[s[i].reshape(-1) for s in stacks] for i in range(min(n, count))]


def manifest_io(manifest: dict, role: str) -> list[dict]:
    """The manifest's inputs or outputs as a list: `input`/`output` for one of each, else `inputs`/`outputs`."""
    return manifest[role + "s"] if role + "s" in manifest else [manifest[role]]


def _manifest(lowered: Graph, plan, layers: list[Layer], ctx: dict, source: dict, semantics: str,
              min_sparsity: float, vectors, sample: int, passes: list[str]) -> dict:
    io = {}
    for b in plan.buffers:  # plan.io_bytes() keeps one buffer per role; several inputs add up
        if b.io:
            io[b.io] = io.get(b.io, 0) + b.size
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

    def public(info: dict) -> dict:
        return {k: v for k, v in info.items()
                if k not in ("used", "index", "label") and (k != "param" or not ctx["single_io"])}

    io_entries = ({"input": public(ctx["input"]), "output": public(ctx["output"])} if ctx["single_io"] else
                  {"inputs": [public(x) for x in ctx["inputs"]], "outputs": [public(x) for x in ctx["outputs"]]})
    tv_inputs, tv_expected = vector_files(len(ctx["inputs"]), len(ctx["outputs"]))
    if ctx["entries"]:  # only for declared entry points: a one-entry manifest stays as it was
        io_entries["entries"] = [{"name": e["name"], "function": f"dmx_model_{e['name']}",
                                  "inputs": [p["name"] for p in e["params"] if p["role"] == "input"],
                                  "outputs": [p["name"] for p in e["params"] if p["role"] == "output"],
                                  "layers": [e["first_layer"], e["last_layer"]]} for e in ctx["entries"]]
    return {
        "dmxgen_version": ctx["version"],
        "source": source,
        "format": ctx["fmt"], "semantics": semantics, "min_sparsity": min_sparsity,
        "passes": passes,
        **io_entries,
        "arena_size": plan.arena_size, "alignment": plan.alignment, "peak_live_bytes": plan.peak_live_bytes,
        "io_bytes": io, "peak_activation_ram": plan.arena_size + sum(io.values()),
        "weight_bytes": weights, "dense_weight_bytes": sum(r.get("dense_weight_bytes", 0) for r in layer_rows),
        "param_bytes": sum(r["param_bytes"] for r in layer_rows),
        "layers": layer_rows, "tensors": tensors,
        "test_vectors": {"inputs": tv_inputs, "expected": tv_expected,
                         "count": len(vectors.inputs), "random": vectors.random, "seed": vectors.seed,
                         "files": [Path(f).name for f in vectors.files]},
        "sample": {"index": sample, "source": f"input file {Path(vectors.files[0]).name}" if vectors.files
                   and sample >= vectors.random else f"random input #{sample} (seed {vectors.seed})"},
    }
