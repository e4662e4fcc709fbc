"""Which storage format each layer's weights get, and the encoded arrays.

`--format dense|csr|dcsr|auto` is a request: csr and dcsr apply only to ops
with a kernel in that format (fully_connected, conv2d) and only to layers
with at least `min_sparsity` zeros; `auto` takes the smallest encoding that
has a kernel (codecs.auto.choose). The reason for every choice goes into
manifest.json.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import codecs
from ..codecs import auto
from ..codecs.view import SPARSE_KERNELS, as_matrix
from ..errors import DmxError

FORMATS = ("dense", "csr", "dcsr", "auto")


@dataclass
class LayerWeights:
    fmt: str
    enc: codecs.Encoded
    matrix: np.ndarray  # the 2-D view the kernel walks
    sparsity: float
    reason: str


def choose_weights(layer: str, op_kind: str, weight: np.ndarray, fmt: str, min_sparsity: float) -> LayerWeights:
    """Encode one layer's weight tensor in the format the options ask for."""
    if fmt not in FORMATS:
        raise DmxError(f"unknown weight format {fmt!r}; choose one of {', '.join(FORMATS)}")
    matrix = as_matrix(op_kind, weight)
    sparsity = 1.0 - np.count_nonzero(matrix) / matrix.size
    kernels = SPARSE_KERNELS.get(op_kind, ("dense",))
    try:
        if fmt == "auto":
            try:
                usable = list(kernels)
                enc = auto.choose(op_kind, matrix)
            except codecs.CodecError:  # e.g. too many columns for CSR's 16-bit indices
                usable = [f for f in kernels if _encodable(f, matrix)]
                enc = auto.choose(op_kind, matrix, allowed=usable)
            return LayerWeights(enc.format, enc, matrix, sparsity, "auto: fewest bytes among " + "/".join(usable))
        if fmt == "dense":
            return LayerWeights("dense", codecs.encode("dense", matrix), matrix, sparsity, "requested")
        if fmt not in kernels:
            return LayerWeights("dense", codecs.encode("dense", matrix), matrix, sparsity,
                                f"no {fmt} kernel for {op_kind}")
        if sparsity < min_sparsity:
            return LayerWeights("dense", codecs.encode("dense", matrix), matrix, sparsity,
                                f"{sparsity:.1%} zeros is below --min-sparsity {min_sparsity:g}")
        return LayerWeights(fmt, codecs.encode(fmt, matrix), matrix, sparsity, "requested")
    except codecs.CodecError as e:
        raise DmxError(f"layer {layer!r} ({op_kind}): cannot store weights as {fmt}: {e}") from None


def _encodable(fmt: str, matrix: np.ndarray) -> bool:
    try:
        codecs.encode(fmt, matrix)
    except codecs.CodecError:
        return False
    return True
