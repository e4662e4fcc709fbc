"""arg_max: TFLite's ARG_MAX of int8 codes along one axis, the first index of the largest (int32 or int64).

The indices are not quantized: the output tensor's dtype (int32 or int64) is the index type, and the
input's grid does not matter (codes compare as the values they stand for). arg_min shares this module's
spec base.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._spec import OpSpec


@dataclass(frozen=True)
class ArgAttrs:
    axis: int  # non-negative


class ArgSpec(OpSpec):
    """ARG_MAX / ARG_MIN: reference_ops::ArgMinMax, a strict comparison, so ties keep the first index."""

    Attrs = ArgAttrs
    targets = ("c", "hls", "tflite")
    pick = staticmethod(np.argmax)
    writes_indices = True  # the C backend passes its output as int32_t / int64_t (backends/c_layers.py ref)

    def activation_dtype(self, graph, op) -> str:
        return graph.tensors[op.inputs[0]].dtype  # the output holds indices, not activations

    def check(self, op, ins, out):
        shape, axis = ins[0].shape, op.a.axis
        if not 0 <= axis < len(shape):
            return f"axis {axis} is outside a {len(shape)}-D input"
        if out.dtype not in ("int32", "int64"):
            return f"the indices are {out.dtype}; TFLite writes int32 or int64"
        want = tuple(d for i, d in enumerate(shape) if i != axis)
        if out.shape != want:
            return f"output shape {list(out.shape)} should be the input's without axis {axis}: {list(want)}"
        return None

    def kernel_params(self, graph, op):
        shape, axis = graph.tensors[op.inputs[0]].shape, op.a.axis
        return {"outer": int(np.prod(shape[:axis], dtype=np.int64)), "axis_size": int(shape[axis]),
                "inner": int(np.prod(shape[axis + 1:], dtype=np.int64)),
                "wide": int(graph.tensors[op.outputs[0]].dtype == "int64")}

    def reference(self, op, args, out_t):
        return self.pick(args[0], axis=op.a.axis).astype(out_t.dtype).reshape(out_t.shape)  # first on ties


@register
class ArgMax(ArgSpec):
    kind = "arg_max"
    summary = "index of the largest int8 along an axis (int32 / int64 indices)"
