"""Frontends turn a framework's model into the integer Graph."""
from __future__ import annotations

from pathlib import Path

from ..errors import DmxError


def load(path: str | Path, **options):
    """Load a model file into a Graph, choosing the frontend by file content."""
    path = Path(path)
    if not path.exists():
        raise DmxError(f"{path}: no such file")
    if path.is_dir():
        raise DmxError(f"{path}: is a folder, expected a .tflite or .pt model file")
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3" or path.suffix == ".tflite":
        from .tflite import load_tflite

        return load_tflite(path, **options)
    if path.suffix in (".pt", ".pt2", ".pth") or head[:2] == b"PK":
        from .torch import load_torch  # noqa: F401  (lives in the torch room)

        return load_torch(path, **options)
    raise DmxError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier) nor a PyTorch file")
