"""Shape rules several op kinds share (their messages are asserted by tests/ops/test_shape_errors.py)."""
from __future__ import annotations

import numpy as np


def conv_out(in_size: int, k: int, stride: int, dil: int, pad_before: int, pad_after: int) -> int:
    """Output size of a strided, dilated, padded window along one axis."""
    return (in_size + pad_before + pad_after - ((k - 1) * dil + 1)) // stride + 1


def broadcast(ins: list, out) -> str | None:
    """A binary elementwise op: the inputs broadcast to the output's shape."""
    try:
        shape = np.broadcast_shapes(ins[0].shape, ins[1].shape)
    except ValueError:
        return f"input shapes {list(ins[0].shape)} and {list(ins[1].shape)} do not broadcast"
    if tuple(shape) != out.shape:
        return f"output shape {list(out.shape)} should be {list(shape)}"
    return None


def same_shape(ins: list, out) -> str | None:
    """Elementwise (softmax along the last axis): TFLite gives the output the input's shape."""
    if ins[0].shape != out.shape:
        return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
    return None


def reduction(ins: list, out, axes) -> str | None:
    """Reducing over `axes` leaves the output's number of values (kept or dropped axes alike)."""
    kept = [d for i, d in enumerate(ins[0].shape) if i not in axes]
    if int(np.prod(kept, dtype=np.int64)) != out.size:
        return f"reducing {list(ins[0].shape)} over axes {list(axes)} cannot give {list(out.shape)}"
    return None
