"""reduce_min: the minimum over axes (TFLite REDUCE_MIN, torch amin), int8 on the input's grid.

Every input element is walked once (graph/loops.py: the walk's source is the input in order,
its destination the output element it folds into, stride 0 along the reduced axes), so any
axes that merge down to the kernels' four loops run with one kernel and no scratch.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..graph import loops
from . import register
from ._checks import reduction
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class ReduceMinAttrs:
    axes: Ints  # sorted, non-negative


@register
class ReduceMin(OpSpec):
    kind = "reduce_min"
    summary = "min over axes"
    Attrs = ReduceMinAttrs
    targets = ("c", "hls", "tflite", "torch")

    def check(self, op, ins, out):
        return reduction(ins, out, op.a.axes)

    def reference(self, op, args, out_t):
        return args[0].min(axis=tuple(op.a.axes)).reshape(out_t.shape)

    def kernel_params(self, graph, op):
        shape = graph.tensors[op.inputs[0]].shape
        walk = loops.Walk(shape, (loops.contiguous_strides(shape), loops.reduction_strides(shape, tuple(op.a.axes))))
        return {"walk": walk, "outputs": graph.tensors[op.outputs[0]].size}
