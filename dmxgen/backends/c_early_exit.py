"""The C export of an early-exit graph: model.c is the baseline, model_ee.c the early-exit run.

An early-exit graph (graph/early_exit.py: entries exit0 ... exit<K-1>, final,
and Graph.early_exit, the policy) is exported as two models in one folder:

- model.c/.h: the backbone without its heads, written by the C backend exactly
  as it writes that graph alone (the unchanged one-entry API: the final
  classifier only);
- model_ee.c/.h: `dmx_model_run_ee(in, out, &exit_taken)` runs the entries
  one after another over its own static arena, tests each head's int8 logits
  with the policy kernel (kernels/exit_policy.c.j2) and returns at the first
  head that accepts (exit k), else after the final classifier (exit K).
  Every entry writes `out`, so `out` holds the logits of the exit taken.
  The exit heads' constants go to headers/<layer>_ee.h; the backbone's layers
  include the baseline's own headers/<layer>.h (headers/headers_ee.h lists
  both), so one storage format serves both models.

expected.h, vectors_ee.h and test_vectors/expected_ee.npz carry the exit the
integer reference takes on each vector (computed by pipeline.prepare_early_exit,
which also makes the baseline's Prepared: this module only prints).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import DmxError
from ..graph import Graph
from ..graph.early_exit import head_ops
from ..graph.exit_policy import ExitPolicy
from ..graph.quant_params import softmax_gemmlowp_params
from . import c as c_backend
from . import c_render
from .c_layers import Layer

EXPECTED = f"{c_backend.VECTORS}/expected_ee.npz"  # arrays "exit" [n] and "output" [n, DMX_OUTPUT_SIZE]
EE_KERNEL = c_render.Kernel("exit_policy", None, False, "kernels/exit_policy.c.j2", None)


def stored_exits(folder: Path, m: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n exits and logits test_vectors/expected_ee.npz stores."""
    path = Path(folder) / m["early_exit"]["expected"]
    try:
        with np.load(path, allow_pickle=False) as z:
            exits, outputs = z["exit"][:n], z["output"][:n]
    except (OSError, KeyError, ValueError) as e:
        raise DmxError(f"{path}: cannot read the early-exit test vectors ({type(e).__name__}: {e})") from None
    if len(exits) < n:
        raise DmxError(f"{path}: stores {len(exits)} early-exit results for {n} test vectors")
    return exits.astype(np.int64), outputs


def _check_outputs(lowered: Graph) -> None:
    """Every exit writes the caller's one output buffer: same int8 type and size for all."""
    where = f"{lowered.source}: " if lowered.source else ""
    final = lowered.tensors[lowered.outputs[-1]]
    for name in lowered.outputs:
        t = lowered.tensors[name]
        if t.dtype != "int8" or t.quant is None:
            raise DmxError(f"{where}early-exit output {name!r} is {t.dtype}; the exit policy reads int8 logits")
        if t.size != final.size:
            raise DmxError(f"{where}early-exit output {name!r} has {t.size} values, the final classifier "
                           f"{final.size}; every exit must give the same number of logits")


def write(prepared, folder: Path, base, policy: ExitPolicy, exits: np.ndarray, outputs: np.ndarray) -> dict:
    """Write the baseline and the early-exit model into `folder`; return the manifest.

    `prepared` is the early-exit graph's pipeline.Prepared (planned with scratch_bytes), the rest is
    what pipeline.prepare_early_exit returns: the baseline's Prepared, the policy, and the exit and
    logits the reference gives on each of the baseline's vectors."""
    lowered = prepared.lowered
    _check_outputs(lowered)
    plan, layers = c_backend.build_layers(lowered, prepared.storage, prepared.plan)
    manifest = c_backend.write(base, folder)
    folder = Path(folder)
    ctx = _context(prepared, base, plan, layers, policy, folder)
    heads = {n for names in head_ops(lowered).values() for n in names}
    head_layers = [layer for layer, op in zip(layers, lowered.ops) if op.name in heads]
    files = {"model_ee.h": c_render.render("model_ee.h.j2", **ctx),
             "model_ee.c": c_render.render("model_ee.c.j2", **ctx),
             "headers/headers_ee.h": c_render.render("headers_ee.h.j2", includes=ctx["includes"])}
    for layer in ctx["own_headers"]:
        files[f"headers/{layer.ident}_ee.h"] = c_render.render("layer.h.j2", l=layer)
    # the policy kernels' header declares the softmax test with the integer softmax's parameters
    kernels = c_render.kernels_for({t for layer in layers for t in layer.templates} | {("softmax_gemmlowp", None)})
    files.update(c_render.kernel_files({"version": c_backend.tool_version(), "kernels": [*kernels, EE_KERNEL]}))
    sample = base.sample
    files["vectors_ee.h"] = c_render.render("vectors_ee.h.j2", inputs=[v[0] for v in base.vectors.inputs],
                                            outputs=[v[0] for v in base.vectors.outputs], exits=exits,
                                            ee_outputs=list(outputs))
    files["expected.h"] = _with_expected_exit((folder / "expected.h").read_text(encoding="ascii"),
                                              int(exits[sample]), outputs[sample])
    for rel, text in files.items():
        (folder / rel).write_text(text, encoding="ascii")
    np.savez(folder / EXPECTED, exit=exits, output=outputs)
    manifest["early_exit"] = {
        "function": "dmx_model_run_ee", "header": "model_ee.h", "policy": policy.kind,
        "thresholds": list(policy.thresholds),
        "exits": [{"entry": name, "tensor": t, "scale": float(lowered.tensors[t].quant.s)}
                  for name, (t, _, _) in prepared.graph.early_exit.items()],
        "arena_size": plan.arena_size, "layers": len(layers),
        "head_weight_bytes": sum(layer.weight_bytes for layer in head_layers),
        "head_param_bytes": sum(layer.param_bytes for layer in head_layers),
        "expected": EXPECTED, "sample_exit": int(exits[sample]),
    }
    (folder / c_backend.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n",
                                             encoding="utf-8")
    return manifest


def _context(prepared, base, plan, layers: list[Layer], policy: ExitPolicy, folder: Path) -> dict:
    lowered = prepared.lowered
    _use_caller_names(lowered, plan, layers)
    infos = [c_backend._io_info(lowered, n, "input", "in") for n in lowered.inputs]
    infos += [c_backend._io_info(lowered, n, "output", "out") for n in lowered.outputs]
    by_name = {x["name"]: x for x in infos}
    entries = c_backend.entry_functions(lowered, layers, [by_name[lowered.inputs[0]]],
                                        [x for x in infos if x["role"] == "output"])
    base_index = {op.name: i for i, op in enumerate(base.lowered.ops)}
    includes, own = _headers(layers, [op.name for op in lowered.ops], base_index, folder)
    scales = [float(lowered.tensors[t].quant.s) for t, _, _ in prepared.graph.early_exit.values()]
    softmax = [softmax_gemmlowp_params(1.0, s) for s in scales] if policy.kind == "softmax" else []
    return {"version": c_backend.tool_version(), "source_name": base.source["name"], "kind": policy.kind,
            "thresholds": list(policy.thresholds), "softmax": softmax, "entries": entries,
            "layers": layers, "arena_size": plan.arena_size, "alignment": plan.alignment,
            "includes": includes, "own_headers": own}


def _use_caller_names(graph: Graph, plan, layers: list[Layer]) -> None:
    """The caller's buffers as dmx_model_run_ee names them: `in`, and `out` for every exit."""
    ins, outs = c_backend.io_params(graph)
    rename = dict(zip(ins, ["in"] * len(ins))) | dict(zip(outs, ["out"] * len(outs)))
    for layer in layers:
        for r in c_backend._refs(layer):
            if r.kind in ("input", "output"):
                r.symbol = rename.get(r.symbol, r.symbol)


def _headers(layers: list[Layer], op_names: list[str], base_index: dict[str, int],
             folder: Path) -> tuple[list[str], list[Layer]]:
    """(headers_ee.h's includes, the layers that get a headers/<layer>_ee.h): a layer whose
    constants the baseline already printed, identically, reuses the baseline's header (whose
    comment names the layer's index in the baseline)."""
    includes, own = [], []
    for layer, name in zip(layers, op_names):
        if not (layer.struct_type or layer.arrays):
            continue
        shared = folder / "headers" / f"{layer.ident}.h"
        if name in base_index and shared.is_file() and \
                c_render.render("layer.h.j2", l=replace(layer, index=base_index[name])) == shared.read_text("ascii"):
            includes.append(f"{layer.ident}.h")
        else:
            includes.append(f"{layer.ident}_ee.h")
            own.append(layer)
    return includes, own


def _with_expected_exit(text: str, exit_taken: int, logits: np.ndarray) -> str:
    """expected.h with the early-exit model's answer on dmx_sample_input added before its #endif."""
    block = c_render.render("expected_ee.j2", exit_taken=exit_taken, values=logits)
    head, sep, tail = text.rpartition("#endif")
    if not sep:
        raise DmxError("C backend: expected.h has no include guard to extend")
    return head + block + sep + tail
