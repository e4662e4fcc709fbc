"""Shared fixtures: where ../shared/models is, and a CLI runner."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = (ROOT.parent / "shared" / "models").resolve()


def shared_models(pattern: str = "*/*.tflite") -> list[Path]:
    """The shared .tflite models, or [] when ../shared is absent (tests then skip)."""
    return sorted(SHARED_MODELS.glob(pattern)) if SHARED_MODELS.is_dir() else []


def shared_or_skip(relpath: str) -> Path:
    p = SHARED_MODELS / relpath
    if not p.exists():
        pytest.skip(f"{p} not present (../shared is not beside this checkout)")
    return p


@pytest.fixture
def small_model(tmp_path) -> Path:
    from dmxgen.testing.tflite_builder import small_cnn

    m = small_cnn(seed=1, sparsity=0.5)
    return m.save(tmp_path / "small.tflite", [0], [len(m.sg.tensors) - 1])
