"""sum: the int8 sum over axes, as TFLite Micro's reference_ops::QuantizedMeanOrSum with compute_sum.

MEAN's arithmetic without the 1/count fold: the int32 sum minus zp_in * count, one double-rounding
requantization by s_in / s_out, saturated. The kernels walk output-major (`outer`: each output
element's first input element, `inner`: the reduced elements from there), so an int32 accumulator
in a register suffices and no arena scratch is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import loops
from ..graph.fixedpoint import _wrap32, multiply_by_quantized_multiplier
from . import register
from ._checks import reduction
from ._requant import saturate
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class SumAttrs:
    axes: Ints  # sorted, non-negative
    input_offset: int  # -zero point of the input
    output_offset: int
    count: int  # values summed per output
    multiplier: int  # s_in / s_out (Prepare's QuantizeMultiplier of the double quotient)
    shift: int


def split_walks(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[loops.Walk, loops.Walk]:
    """(outer, inner): outer visits the kept dims (src: the input, dst: the output in order), inner
    the reduced dims from there (src: the input; dst unused, stride 0)."""
    src = loops.contiguous_strides(shape)
    kept = [i for i in range(len(shape)) if i not in axes]
    red = [i for i in range(len(shape)) if i in axes]
    kept_shape = tuple(shape[i] for i in kept)
    outer = loops.Walk(kept_shape, (tuple(src[i] for i in kept), loops.contiguous_strides(kept_shape)))
    inner = loops.Walk(tuple(shape[i] for i in red), (tuple(src[i] for i in red), (0,) * len(red)))
    return outer, inner


@register
class Sum(OpSpec):
    kind = "sum"
    summary = "int8 sum over axes"
    Attrs = SumAttrs
    targets = ("c", "hls", "tflite")

    def check(self, op, ins, out):
        a = op.a
        if not -31 <= a.shift <= 30:
            return f"shift {a.shift} is outside -31..30"
        if not -128 <= a.input_offset <= 128:
            return f"input_offset {a.input_offset} is not minus an int8 zero point"
        if a.count != loops.size([ins[0].shape[i] for i in a.axes]):
            return f"count {a.count} is not the number of values reduced"
        if a.count > (1 << 23):  # |sum - zp * count| < 2**31: no int32 wrap in the accumulator
            return f"{a.count} values per sum can overflow the int32 accumulator"
        return reduction(ins, out, a.axes)

    def reference(self, op, args, out_t):
        a = op.a
        total = args[0].astype(np.int64).sum(axis=tuple(a.axes)) + a.input_offset * a.count
        q = multiply_by_quantized_multiplier(_wrap32(total), a.multiplier, a.shift)
        return saturate(q + a.output_offset, out_t.dtype).reshape(out_t.shape)

    def kernel_params(self, graph, op):
        a = op.a
        outer, inner = split_walks(graph.tensors[op.inputs[0]].shape, tuple(a.axes))
        return {"outer": outer, "inner": inner, "zp_sum": a.input_offset * a.count, "mult": a.multiplier,
                "shift": a.shift, "out_offset": a.output_offset}
