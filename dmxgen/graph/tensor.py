"""Tensors of the integer graph: shape, dtype, quantization and constant data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32", "bool")


@dataclass
class QuantParams:
    """Affine quantization real = scale * (q - zero_point).

    Per-tensor when `axis` is None (one scale and zero point), per-channel along
    `axis` otherwise. Scales are kept as float32 values because that is how a
    .tflite stores them and how TFLite derives its integer multipliers.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.full(self.scale.shape, int(self.zero_point[0]), np.int64)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.size > 1

    @property
    def s(self) -> float:
        """The per-tensor scale (first entry)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        """The per-tensor zero point (first entry)."""
        return int(self.zero_point[0])

    def describe(self) -> str:
        if self.per_channel:
            return f"per-channel[{self.scale.size}] axis={self.axis}"
        return f"scale={self.s:.6g} zp={self.zp}"


@dataclass
class Tensor:
    """A value in the graph; `data` is set for constants (weights, biases)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None = None
    data: np.ndarray | None = field(default=None, repr=False)
    origin: int | None = None  # index of the tensor in the source model, for per-layer comparisons
    encoded: Any = field(default=None, repr=False)  # weights stored pre-encoded in the model file

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r}: unknown dtype {self.dtype!r}")

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize
