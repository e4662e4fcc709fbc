"""One pipeline for every target: load -> lowering passes -> storage policy -> memory plan -> test vectors.

`dmxgen export` (C and HLS alike) and `dmxgen verify OUT` call `prepare`, and
the backends print the `Prepared` result: they neither lower nor make test
vectors themselves, so every target sees the same lowered graph and the same
vectors. This module sits below the backends (it imports none of them): the
C backend's per-op scratch sizes, the one backend fact the memory plan needs,
come in as the `scratch` argument.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import vectors as test_vectors
from .codecs.policy import EXPORT, PolicyError, StoragePolicy
from .errors import DmxError
from .graph import Graph, Op
from .passes import lower
from .plan import Plan, plan_memory
from .vectors import Vectors


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_model(path: str | Path, semantics: str = "tflite", trust_pickle: bool = False) -> Graph:
    """A Graph from a .tflite (TFLite or TFLM semantics) or a model saved by dmxgen.save."""
    from .frontends import load

    if str(path).endswith(".tflite"):
        return load(path, semantics=semantics)
    return load(path, trust_pickle=trust_pickle)


def storage_policy(fmt: str = EXPORT.fmt, min_sparsity: float = EXPORT.min_sparsity,
                   weight_budget: int | None = None) -> StoragePolicy:
    """The export's storage policy (codecs/policy.py; the C backend packs INT4, HLS derives its own),
    refused with the option's name before anything is loaded or written."""
    if not 0.0 <= min_sparsity <= 1.0:  # named as the option the user typed; the policy checks the rest
        raise DmxError(f"--min-sparsity must be between 0 and 1, got {min_sparsity}")
    if weight_budget is not None and (isinstance(weight_budget, bool) or not isinstance(weight_budget, int)
                                      or weight_budget < 0):
        raise DmxError(f"--weight-budget must be a byte count >= 0, got {weight_budget!r}")
    try:
        return replace(EXPORT, fmt=fmt, min_sparsity=min_sparsity, budget_bytes=weight_budget)
    except PolicyError as e:
        raise DmxError(str(e)) from None


@dataclass
class Prepared:
    """A model ready to print: the graph as loaded, the lowered graph the backends print, the passes
    that changed it, the storage policy (the C backend's, INT4 packed; HLS derives its own from it), the
    arena plan (when asked for) and the test vectors."""

    graph: Graph
    lowered: Graph
    passes: list[str]
    storage: StoragePolicy
    semantics: str
    source: dict  # path, name and sha256 of the model file (None values for a graph built in memory)
    make_vectors: Callable[[], Vectors] = field(repr=False)
    plan: Plan | None = None
    scratch: dict[int, int] = field(default_factory=dict)
    _vectors: Vectors | None = field(default=None, repr=False)

    @property
    def vectors(self) -> Vectors:
        """Made on first use, so that a backend's refusal of the graph comes before the reference runs."""
        if self._vectors is None:
            self._vectors = self.make_vectors()
        return self._vectors

    @property
    def sample(self) -> int:
        """Index of the vector that becomes input.h: the first of --input when given, else the first random one."""
        return self.vectors.random if self.vectors.files else 0


ScratchFn = Callable[[Graph, Op], int]


def prepare(model: str | Path | Graph, *, source: str | Path | None = None, semantics: str = "tflite",
            trust_pickle: bool = False, fmt: str = EXPORT.fmt, min_sparsity: float = EXPORT.min_sparsity,
            n_vectors: int = 8, seed: int = 0, input_files=(), scratch: ScratchFn | None = None,
            weight_budget: int | None = None) -> Prepared:
    """Load (when `model` is a path), lower, plan and make test vectors.

    `source` names the file a Graph was loaded from (its path and sha256 go into the manifest so that
    `dmxgen verify OUT` can recompute the reference); a path `model` is its own source. `scratch(graph, op)`
    gives the bytes of working memory a kernel needs; without it there is no arena plan. `weight_budget`:
    the most bytes the weights may take (auto spends what its fewest bytes leave on faster formats).
    """
    storage = storage_policy(fmt, min_sparsity, weight_budget)
    if isinstance(model, Graph):
        graph = model
    else:
        graph = load_model(model, semantics=semantics, trust_pickle=trust_pickle)
        source = model if source is None else source
    applied: list[str] = []
    lowered = lower(graph, applied)
    src = Path(source).resolve() if source is not None else None
    info = ({"path": str(src), "name": src.name, "sha256": sha256(src)} if src else
            {"path": None, "name": Path(graph.source).name if graph.source else "graph", "sha256": None})
    key = (info["path"], info["sha256"], semantics) if src else None
    files = tuple(input_files)
    prepared = Prepared(graph, lowered, applied, storage, semantics, info,
                        lambda: test_vectors.compute(graph, lowered, n_vectors, seed, files, key=key))
    if scratch is not None:
        prepared.scratch = {i: scratch(lowered, op) for i, op in enumerate(lowered.ops)}
        prepared.plan = plan_memory(lowered, prepared.scratch)
    return prepared


def prepare_from_manifest(manifest: dict, *, n_vectors: int, seed: int, input_files=(),
                          trust_pickle: bool = False) -> Prepared | None:
    """The pipeline re-run on the model an exported folder was made from, for `dmxgen verify OUT`.

    None when the manifest names no model file, the file is gone or changed (sha256), it is a
    pickle verify was not told to trust, or its lowered graph no longer has the folder's layers:
    the folder's stored test vectors then stand in.
    """
    path = manifest["source"]["path"]
    if not path or not source_unchanged(manifest):
        return None
    try:
        prepared = prepare(Path(path), semantics=manifest["semantics"], trust_pickle=trust_pickle,
                           n_vectors=n_vectors, seed=seed, input_files=input_files)
    except DmxError as e:
        from .frontends.torch import PICKLE_WHY  # only here: the TFLite path never imports torch

        if trust_pickle or PICKLE_WHY not in str(e):
            raise
        return None
    if len(prepared.lowered.ops) != len(manifest["layers"]):
        return None
    return prepared


def source_unchanged(manifest: dict) -> bool:
    """The source model is still the file that was exported (same sha256)."""
    path = manifest["source"]["path"]
    return bool(path) and Path(path).is_file() and sha256(path) == manifest["source"]["sha256"]


# -- early exit (docs/early-exit.md): model.c is the baseline of the graph, model_ee.c the whole graph --
def prepare_early_exit(prepared: Prepared, n_vectors: int, seed: int, input_files=(),
                       scratch: ScratchFn | None = None) -> tuple[Prepared, object, np.ndarray, np.ndarray]:
    """(the baseline's Prepared, the graph's ExitPolicy, the exit the reference takes on each of the
    baseline's vectors, that exit's int8 logits [n, classes]) for a prepared early-exit graph. The
    policy is checked (one line naming what does not fit) before any vector is computed."""
    from .graph.early_exit import baseline, stored_policy

    policy = stored_policy(prepared.graph)
    base = prepare(baseline(prepared.graph), semantics=prepared.semantics, fmt=prepared.storage.fmt,
                   min_sparsity=prepared.storage.min_sparsity, n_vectors=n_vectors, seed=seed,
                   input_files=input_files, scratch=scratch)
    base.source = prepared.source  # no cache key: the source file's own graph is the early-exit one
    exits, outputs = early_exit_answers(prepared.graph, policy, base.vectors.inputs)
    return base, policy, exits, outputs


def early_exit_answers(graph: Graph, policy, inputs: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(exit taken per vector, the int8 logits of that exit [n, classes]) from the integer reference."""
    from .reference.early_exit import run_early_exit

    results = [run_early_exit(graph, policy, one[0]) for one in inputs]
    return (np.array([k for k, _ in results], np.int64),
            np.stack([np.asarray(v).reshape(-1).astype(np.int8) for _, v in results]))


def prepare_early_exit_from_manifest(manifest: dict, *, n_vectors: int, seed: int, input_files=()) -> tuple | None:
    """prepare_early_exit re-run on the early-exit model a folder was exported from, for `dmxgen verify
    OUT`; None when the source is gone or changed (the folder's stored vectors then serve)."""
    if not manifest["source"]["path"] or not source_unchanged(manifest):
        return None
    ee = prepare(Path(manifest["source"]["path"]), semantics=manifest["semantics"], fmt=manifest["format"],
                 min_sparsity=manifest["min_sparsity"], n_vectors=0)
    if not ee.graph.early_exit:
        return None
    return prepare_early_exit(ee, n_vectors, seed, input_files)
