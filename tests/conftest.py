"""Shared fixtures: where ../shared/models is, and a CLI runner."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = (ROOT.parent / "shared" / "models").resolve()


def shared_models(pattern: str = "*/*.tflite") -> list[Path]:
    """The shared .tflite models, or [] when ../shared is absent (tests then skip)."""
    return sorted(SHARED_MODELS.glob(pattern)) if SHARED_MODELS.is_dir() else []


# The shared models every `make test` runs; the others run in `make test-slow` (marked slow), so that
# the default suite fits CI's budget. One of each family: the MLPerf Tiny models, the dCSR paper's
# dense and 90%-pruned DS-CNNs, and its dense and pruned MobileNetV2.
SAMPLE = {"kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8", "dense_s", "sparse_s_90",
          "sparse_m_90", "sparse_l_90", "mobilenetv2_cifar10_dense100", "mobilenetv2_cifar10_sparse90"}


def sampled(models: list[Path], sample: set[str] = SAMPLE) -> list:
    """pytest params of `models`, those outside `sample` (by stem) marked slow."""
    return [pytest.param(m, id=m.name, marks=() if m.stem in sample else pytest.mark.slow) for m in models]


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
