"""Conv/FC weight tensors of the shared .tflite models, for codec tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[2] / ".." / "shared" / "models"


def weight_tensors(path: str | Path) -> list[tuple[str, str, np.ndarray]]:
    """(tensor name, op kind, int8 weight) for every conv/depthwise/FC op, via the project's frontend."""
    from dmxgen.frontends.tflite import load_tflite

    g = load_tflite(path)
    return [(g.weights(op).name, op.kind, g.weights(op).data) for op in g.ops if g.weights(op) is not None]


def model_files(*folders: str) -> list[Path]:
    """Every .tflite under the given folders of ../shared/models (empty when absent)."""
    return sorted(p for f in folders for p in (MODELS / f).glob("*.tflite"))
