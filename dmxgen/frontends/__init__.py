"""Frontends turn a framework's model into the integer Graph."""
from __future__ import annotations

import stat
from pathlib import Path

from ..errors import DmxError


def load(path: str | Path, **options):
    """Load a model file into a Graph, choosing the frontend by file content."""
    path = Path(path)
    regular_file_size(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DmxError(f"{path}: cannot read it: {e.strerror}") from None
    if head[4:8] == b"TFL3" or path.suffix == ".tflite":
        from .tflite import load_tflite

        return load_tflite(path, **options)
    if path.suffix in (".pt", ".pt2", ".pth") or head[:2] == b"PK":
        from .torch import load_torch  # noqa: F401  (lives in the torch room)

        return load_torch(path, **options)
    raise DmxError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier) nor a PyTorch file")


def regular_file_size(path: Path) -> int:
    """The size of the model file `path`, refusing what is not a regular file once symlinks are
    followed: opening a FIFO blocks forever and reading /dev/zero never ends."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DmxError(f"{path}: no such file") from None
    except OSError as e:
        raise DmxError(f"{path}: cannot read it: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DmxError(f"{path}: is a folder, expected a .tflite or .pt model file")
    if not stat.S_ISREG(st.st_mode):
        raise DmxError(f"{path}: is not a regular file (a device, FIFO or socket); expected a model file")
    return st.st_size
