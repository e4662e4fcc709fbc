"""Build a one-op .tflite, run it through the reference and an interpreter, demand bit equality.

Every tests/ops/test_<op>.py builds tiny models with ModelBuilder and calls
`check`, which feeds seeded random inputs plus the extremes (all -128, all
127 for int8) to `dmxgen.reference.run` and to LiteRT's reference kernels
(or TFLite Micro) and compares the raw bytes of the outputs. A file's table
of cases is written once as `Case`s: `check_case` runs one against a golden,
and `_targets.check_targets` runs them all, with the same input sets, on the
targets the op declares (host C, HLS csim, the M55).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmxgen import reference
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden_layers
from dmxgen.graph import Graph
from dmxgen.testing.tflite_builder import ModelBuilder

def save(m: ModelBuilder, tmp_path: Path, inputs: list[int], outputs: list[int], name: str = "op") -> Path:
    return m.save(Path(tmp_path) / f"{name}.tflite", inputs, outputs)


def random_input(rng: np.random.Generator, shape, dtype: str, float_range: float = 4.0) -> np.ndarray:
    if dtype in ("int8", "int16"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    if dtype == "float32":
        return (rng.standard_normal(size=shape) * float_range).astype(np.float32)
    raise ValueError(dtype)


def input_sets(graph: Graph, n: int, seed: int, extremes: bool = True,
               float_range: float = 4.0) -> list[list[np.ndarray]]:
    """n random input sets, then (integer inputs only) all at the dtype's minimum and all at its maximum."""
    rng = np.random.default_rng(seed)
    ts = [graph.tensors[name] for name in graph.inputs]
    sets = [[random_input(rng, t.shape, t.dtype, float_range) for t in ts] for _ in range(n)]
    if extremes and all(t.dtype in ("int8", "int16") for t in ts):
        lo, hi = ([np.full(t.shape, getattr(np.iinfo(t.dtype), end), t.dtype) for t in ts] for end in ("min", "max"))
        sets += [lo, hi]
        if len(ts) == 2:  # opposite corners of a binary op
            sets += [[lo[0], hi[1]], [hi[0], lo[1]]]
    return sets


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tobytes() == b.tobytes()


def compare(path: Path, sets: list[list[np.ndarray]], golden: str = "tflite", per_layer: bool = False) -> np.ndarray:
    """Reference vs `golden` on every input set; returns all outputs stacked (for extra asserts).

    `per_layer` (LiteRT only) also compares every op's output tensor.
    """
    graph = load_tflite(path, semantics=golden)  # each golden has the frontend semantics of the same name
    outs = []
    for k, inputs in enumerate(sets):
        values = reference.run(graph, inputs, keep=per_layer)
        layers = per_layer and golden == "tflite"
        golds, every = run_golden_layers(path, inputs, golden, layers=layers)
        if layers:
            for op in graph.ops:
                mine, theirs = values[op.outputs[0]], every[graph.tensors[op.outputs[0]].origin]
                assert _same_bits(mine, theirs.reshape(mine.shape)), f"{op.name} differs on input set {k}"
        ref = values[graph.outputs[0]]
        gold = np.asarray(golds[0])
        if not _same_bits(ref, gold):
            bad = np.flatnonzero(ref.reshape(-1) != gold.reshape(-1)) if ref.size == gold.size else []
            raise AssertionError(
                f"{path.name} vs {golden}, input set {k}: reference {ref.dtype}{list(ref.shape)} differs from "
                f"golden {gold.dtype}{list(gold.shape)} at {len(bad)} positions; first: "
                + ", ".join(f"[{i}] ref={ref.reshape(-1)[i]} gold={gold.reshape(-1)[i]}" for i in bad[:5]))
        outs.append(ref)
    return np.stack(outs)


def check(m: ModelBuilder, tmp_path: Path, inputs: list[int], outputs: list[int], *,
          goldens: tuple[str, ...] = ("tflite",), n: int = 8, seed: int = 0, extra: list | None = None,
          extremes: bool = True, float_range: float = 4.0, min_distinct: int = 2,
          per_layer: bool = False) -> np.ndarray:
    """Save the model, compare it with each golden on n random + extreme (+ `extra`) input sets.

    `min_distinct` guards against vacuous cases: the outputs over all input
    sets must take at least that many distinct values (a kernel that always
    saturates or always returns zero proves little).
    """
    path = save(m, tmp_path, inputs, outputs)
    graph = load_tflite(path)
    sets = input_sets(graph, n, seed, extremes, float_range) + list(extra or [])
    result = None
    for golden in goldens:
        result = compare(path, sets, golden, per_layer)
    assert result is not None
    assert np.unique(result).size >= min_distinct, f"only {np.unique(result).size} distinct output values"
    return result


@dataclass
class Case:
    """One case of an op file: its model and the input sets `check` feeds it (see input_sets).
    `m` may be a Graph for a kind no frontend reads from a file (then inputs/outputs are unused)."""

    m: ModelBuilder | Graph
    inputs: list[int]
    outputs: list[int]
    n: int = 8
    seed: int = 0
    extra: list = field(default_factory=list)
    extremes: bool = True
    float_range: float = 4.0


def case_sets(case: Case, graph: Graph) -> list[list[np.ndarray]]:
    """The input sets of `case` for its loaded graph: what check_case feeds it."""
    return input_sets(graph, case.n, case.seed, case.extremes, case.float_range) + list(case.extra)


def check_case(case: Case, tmp_path: Path, **kw) -> np.ndarray:
    """`check` on a Case; kw: goldens, min_distinct, per_layer."""
    return check(case.m, tmp_path, case.inputs, case.outputs, n=case.n, seed=case.seed, extra=case.extra,
                 extremes=case.extremes, float_range=case.float_range, **kw)


# -- small builders shared by several op files ---------------------------------

def weights(rng: np.random.Generator, shape, lo: int = -127, hi: int = 127) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def output_scale(s_in: float, s_w, taps: int, spread: float = 1.0) -> float:
    """An output scale that puts a typical accumulator of `taps` random products near +-40 LSB / spread."""
    s_w = float(np.max(np.atleast_1d(s_w)))
    return float(s_in * s_w * np.sqrt(taps) * 74 * 74 / 40 / spread)


def bias(rng: np.random.Generator, n: int, magnitude: int = 2000) -> np.ndarray:
    return rng.integers(-magnitude, magnitude + 1, size=n).astype(np.int32)
