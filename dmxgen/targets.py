"""The pipeline's result printed by the backends: `dmxgen export` and `dmxgen verify OUT` as library calls.

`export` prepares the model once (dmxgen/pipeline.py) and has every asked-for
target print it into ONE temporary folder, which replaces OUT only when all of
them succeeded (backends/c_files.py atomic_folder), so OUT is never a mix of
a new C export and an old hls/. `verify_folder` re-runs the pipeline on the
model a folder was exported from (else takes its stored vectors) and checks
the host build against it. The commands are thin wrappers over these two.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import pipeline
from .backends import c as c_backend
from .backends import c_early_exit
from .backends import host
from .backends.c_files import atomic_folder
from .backends.c_layers import scratch_bytes
from .codecs.policy import EXPORT
from .errors import DmxError
from .graph import Graph

TARGETS = ("c", "hls")


def export(model: str | Path | Graph, out: str | Path, *, targets=("c",), source: str | Path | None = None,
           fmt: str = EXPORT.fmt, semantics: str = "tflite", min_sparsity: float = EXPORT.min_sparsity, input_files=(),
           n_vectors: int = 8, seed: int = 0, trust_pickle: bool = False, hls: dict | None = None,
           weight_budget: int | None = None) -> dict:
    """Write the exported folder for `model` (a model file or a Graph) to `out`; return its manifest.

    `source` is the file a Graph was loaded from (its path and sha256 go into the manifest so that
    `dmxgen verify OUT` can recompute the reference); None for a graph built in memory, which
    `verify` then checks against the stored test vectors only. `hls` holds write_hls's options
    (interface, part, clock_ns, reuse_factor). `weight_budget`: the most bytes the C target's weights may
    take; `--format auto` then spends what its fewest bytes leave on faster formats (codecs/policy.py).
    """
    bad = [t for t in targets if t not in TARGETS]
    if bad or not targets:
        raise DmxError(f"unknown --target {bad[0] if bad else ''!r}; choose from {', '.join(TARGETS)}")
    with_c = "c" in targets
    prepared = pipeline.prepare(model, source=source, semantics=semantics, trust_pickle=trust_pickle, fmt=fmt,
                                min_sparsity=min_sparsity, seed=seed, input_files=input_files,
                                n_vectors=n_vectors if with_c else max(n_vectors, 1),  # the testbench needs one
                                scratch=scratch_bytes if with_c else None, weight_budget=weight_budget)
    with atomic_folder(Path(out), c_backend.MANIFEST) as tmp:
        if with_c and prepared.graph.early_exit:  # model.c (the baseline) and model_ee.c
            answers = pipeline.prepare_early_exit(prepared, n_vectors, seed, input_files, scratch_bytes)
            manifest = c_early_exit.write(prepared, tmp, *answers)
        elif with_c:
            manifest = c_backend.write(prepared, tmp)
        else:
            manifest = {"targets": ["hls"], "source": {"path": prepared.source["path"]}, "semantics": semantics}
        if "hls" in targets:
            from .backends.hls import write_hls

            storage = prepared.storage  # the export's format and min sparsity; write_hls stores INT4 unpacked
            manifest["hls"] = write_hls(prepared.lowered, tmp, weight_format=storage.fmt,
                                        min_sparsity=storage.min_sparsity,
                                        sample_inputs=prepared.vectors.inputs,
                                        expected_outputs=prepared.vectors.outputs, **(hls or {}),
                                        early_exit=_hls_early_exit(prepared) if prepared.graph.early_exit else None)
            (tmp / c_backend.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _hls_early_exit(prepared: pipeline.Prepared) -> dict:
    """write_hls's early_exit: the policy, the heads' softmax constants, the reference's answers."""
    from .graph.early_exit import stored_policy
    from .graph.quant_params import softmax_gemmlowp_params

    graph = prepared.graph
    policy = stored_policy(graph)
    exits, outputs = pipeline.early_exit_answers(graph, policy, prepared.vectors.inputs)
    scales = [float(graph.tensors[t].quant.s) for t, _, _ in graph.early_exit.values()]
    return {"kind": policy.kind, "thresholds": list(policy.thresholds), "exits": exits.tolist(), "outputs": outputs,
            "softmax": [softmax_gemmlowp_params(1.0, s) for s in scales]}


def verify_folder(path: str | Path, n_inputs: int = 8, seed: int = 0, input_files=(), opt: str = "-O2",
                  extra: tuple[str, ...] = (), trust_pickle: bool = False) -> dict:
    """Build an exported folder with sanitizers, run it and compare with the reference, to the bit.

    Expected values come from the pipeline re-run on the source model recorded in manifest.json when
    it is still there (same sha256; a pickled checkpoint only with trust_pickle), else from the test
    vectors stored in the folder. `opt` and `extra` (compiler flags) let tests trade optimisation
    for build time.
    """
    folder = Path(path)
    m = host.read_manifest(folder)
    if "layers" not in m:
        raise DmxError(f"{folder}: holds no C export (exported with --target {','.join(m.get('targets', []))}); "
                       "check its hls/ with `make -C hls csim MODEL=...`")
    early_exit = "early_exit" in m  # model.c is the baseline of the source's early-exit graph
    if early_exit:
        answers = pipeline.prepare_early_exit_from_manifest(m, n_vectors=n_inputs, seed=seed, input_files=input_files)
        prepared = answers[0] if answers else None
    else:
        prepared = pipeline.prepare_from_manifest(m, n_vectors=n_inputs, seed=seed, input_files=input_files,
                                                  trust_pickle=trust_pickle)
    if prepared is not None:
        v = prepared.vectors
        exp = host.Expected(v.inputs, v.outputs, v.layers, [(op.name, op.kind) for op in prepared.lowered.ops],
                            "model")
    else:
        exp = host.stored_expected(folder, m, n_inputs, seed, input_files, _why_stored(m))
    report = host.check_folder(folder, m, exp, opt=opt, extra=extra)
    if early_exit:
        exits, outputs = answers[2:] if answers else c_early_exit.stored_exits(folder, m, len(exp.inputs))
        report["early_exit"] = host.check_early_exit(folder, m, exp.inputs, exits, outputs, opt=opt, extra=extra)
        report["bit_exact"] = report["bit_exact"] and report["early_exit"]["bit_exact"]
    return report


def _why_stored(m: dict) -> str:
    path = m["source"]["path"]
    if not path:
        return "the export names no source model file"
    if Path(path).suffix != ".tflite" and pipeline.source_unchanged(m):  # prepare_from_manifest did not load it
        return f"the source model {path} is a pickle (pass --trust-pickle to re-load it)"
    return f"the source model {path} is missing or changed since the export"
