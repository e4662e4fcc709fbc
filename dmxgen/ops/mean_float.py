"""mean_float: the float32 mean over axes, as TFLite's reference_ops::Mean (no integer kernel)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._checks import reduction
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class MeanFloatAttrs:
    axes: Ints  # sorted, non-negative


@register
class MeanFloat(OpSpec):
    kind = "mean_float"
    summary = "float32 mean over axes"
    Attrs = MeanFloatAttrs
    dtypes = ("float32",)
    targets = ("tflite",)  # the reference runs it; the backends print integer graphs

    def check(self, op, ins, out):
        return reduction(ins, out, op.a.axes)

    def reference(self, op, args, out_t):
        return _float_mean(args[0], op.a.axes).reshape(out_t.shape)


def _float_mean(x: np.ndarray, axes) -> np.ndarray:
    """float32 sum in the input's row-major order (as reference_ops::Mean), then / float32(count)."""
    axes = tuple(axes)
    kept = [i for i in range(x.ndim) if i not in axes]
    rows = np.transpose(x.astype(np.float32), kept + list(axes)).reshape(-1, int(np.prod([x.shape[a] for a in axes])))
    total = np.zeros(rows.shape[0], np.float32)
    for j in range(rows.shape[1]):  # sequential, not numpy's pairwise summation
        total = (total + rows[:, j]).astype(np.float32)
    return (total / np.float32(rows.shape[1])).astype(np.float32)
