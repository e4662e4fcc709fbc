"""Weight storage formats (docs/formats.md): dense, CSR, dCSR and RLE, and dCSR's gather-offset
variant for single vectors (docs/formats-dcsr-gather.md).

Each format module has `encode(matrix) -> Encoded` and `decode(Encoded)`;
decoders read only the arrays, as a C kernel would, so a round trip checks
exactly what gets emitted; `policy.py` decides which format each weight
tensor of a graph is stored in. This package imports numpy only.
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from . import csr, dcsr, dcsr_gather, dense, rle
from ._base import CodecError, Encoded

FORMATS: dict[str, ModuleType] = {"dense": dense, "csr": csr, "dcsr": dcsr, "rle": rle, "dcsr_gather": dcsr_gather}

__all__ = ["FORMATS", "CodecError", "Encoded", "decode", "encode"]


def _module(name: str) -> ModuleType:
    try:
        return FORMATS[name]
    except KeyError:
        raise CodecError(f"unknown weight format {name!r}; known: {', '.join(FORMATS)}") from None


def encode(name: str, w: np.ndarray) -> Encoded:
    """Encode the 2-D int8 matrix `w` in format `name`."""
    return _module(name).encode(w)


def decode(enc: Encoded) -> np.ndarray:
    """Rebuild the int8 matrix from an encoding's arrays."""
    return _module(enc.format).decode(enc)
