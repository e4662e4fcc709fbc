"""Helpers for the C backend tests: one-op models, export + host verify in one call."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dmxgen.targets import export
from dmxgen.targets import verify_folder
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")


def save(tmp_path: Path, name: str, m: ModelBuilder, inputs: list[int], outputs: list[int]) -> Path:
    return m.save(tmp_path / f"{name}.tflite", inputs, outputs)


def export_verify(model: Path, out: Path, fmt: str = "auto", semantics: str = "tflite", n_inputs: int = 8,
                  input_files=(), opt: str = "-O2", **options) -> tuple[dict, dict]:
    """Export `model` to `out` and verify it on the host; return (manifest, verify result)."""
    graph = load_tflite(model, semantics=semantics)
    manifest = export(graph, out, source=model, fmt=fmt, semantics=semantics, input_files=tuple(input_files),
                      **options)
    result = verify_folder(out, n_inputs=n_inputs, seed=0, input_files=tuple(input_files), opt=opt)
    return manifest, result


def assert_bit_exact(result: dict) -> None:
    bad = [layer for layer in result["layers"] if layer["mismatches"]]
    assert result["bit_exact"] and result["max_abs_diff"] == 0 and not bad, (result["outputs"], bad[:3])
    assert result["outputs"][0]["values"] > 0


def extremes(tmp_path: Path, shape, dtype="int8") -> Path:
    """A .npy with the input at its extremes: all -128, all 127, and an alternating pattern."""
    n = int(np.prod(shape))
    rows = [np.full(n, -128), np.full(n, 127), np.where(np.arange(n) % 2 == 0, 127, -128)]
    p = tmp_path / "extremes.npy"
    np.save(p, np.stack(rows).astype(dtype).reshape(3, *shape))
    return p


def rand_weights(rng, shape, sparsity=0.0):
    w = rng.integers(-127, 128, size=shape).astype(np.int8)
    if sparsity:
        w[rng.random(shape) < sparsity] = 0
    return w
