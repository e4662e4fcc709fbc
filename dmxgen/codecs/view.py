"""The 2-D matrix a kernel walks for each weight tensor, and back.

Codecs only see matrices; this module fixes, per op, which matrix that is, so
that the encoder and the C kernel agree on what a "row" and a "column" are.
"""
from __future__ import annotations

import numpy as np

from ._base import CodecError

# Which formats have a kernel for each op with a weights input (dense is always available): each
# spec's `weight_formats` (dmxgen/ops/<kind>.py). Codecs import nothing of dmxgen, so the table is
# repeated here and tests/ops/test_support.py holds it equal to the specs.
SPARSE_KERNELS: dict[str, tuple[str, ...]] = {
    "fully_connected": ("dense", "csr", "dcsr", "dcsr_gather"),  # dcsr_gather: the C backend only
    "conv2d": ("dense", "csr", "dcsr", "dcsr_gather"),
    "depthwise_conv2d": ("dense",),
    "lstm": ("dense",),  # each gate's [cell, in] or [cell, out] matrix, like an FC's
    "gru": ("dense",),  # as the lstm's
}

_ALIASES = {"conv_2d": "conv2d", "depthwise_conv_2d": "depthwise_conv2d", "fc": "fully_connected"}


def op_name(op_kind: str) -> str:
    """Canonical op kind; also accepts TFLite spellings (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)."""
    kind = op_kind.lower()
    kind = _ALIASES.get(kind, kind)
    if kind not in SPARSE_KERNELS:
        raise CodecError(f"no weight matrix view for op {op_kind!r}; known: {', '.join(SPARSE_KERNELS)}")
    return kind


def matrix_shape(op_kind: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """The (rows, cols) that `as_matrix` gives for a weight of `shape`."""
    kind = op_name(op_kind)
    shape = tuple(int(x) for x in shape)
    if kind in ("fully_connected", "lstm", "gru"):
        if len(shape) != 2:
            raise CodecError(f"{kind} weight must be [out, in], got shape {shape}")
        return shape  # type: ignore[return-value]
    if len(shape) != 4:
        raise CodecError(f"{kind} weight must be 4-D, got shape {shape}")
    if kind == "conv2d":
        return shape[0], shape[1] * shape[2] * shape[3]
    if shape[0] != 1:
        raise CodecError(f"depthwise_conv2d weight must be [1, kh, kw, C*mult], got shape {shape}")
    return shape[1] * shape[2], shape[3]


def as_matrix(op_kind: str, weight: np.ndarray) -> np.ndarray:
    """View a weight tensor as the matrix its kernel walks (no copy when contiguous).

    - fully_connected: [out, in] as is; row r holds output r's weights.
    - conv2d: OHWI [out, kh, kw, in] -> (out, kh*kw*in) in memory order: an
      output channel's filter is one row whose column is the offset (ky, kx, ci)
      into the NHWC input patch; a 1x1 conv is thus (out, in), like an FC layer.
    - depthwise_conv2d: TFLite [1, kh, kw, C*mult] -> (kh*kw, C*mult) in memory
      order: a depthwise kernel has no long per-output dot product to walk;
      it loops over the kh*kw taps and, per tap, multiplies a vector of input
      channels, so a row is one tap's contiguous channel vector (the same
      (prod(S[:-1]), S[-1]) rule formats.md gives for TFLite layouts).
    """
    rows, cols = matrix_shape(op_kind, np.shape(weight))
    return np.asarray(weight).reshape(rows, cols)


def from_matrix(op_kind: str, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `as_matrix`: the weight tensor of `shape` whose view is `matrix`."""
    rows, cols = matrix_shape(op_kind, shape)
    if np.shape(matrix) != (rows, cols):
        raise CodecError(f"{op_name(op_kind)}: matrix of shape {np.shape(matrix)} is not the view "
                         f"({rows}, {cols}) of a weight of shape {tuple(shape)}")
    return np.asarray(matrix).reshape(tuple(int(x) for x in shape))
