"""STRIDED_SLICE, SLICE, SPLIT and SPLIT_V: copies of parts of a tensor (frontends/tflite_slices.py resolves the ranges)."""
from __future__ import annotations

import tflite

from ...errors import DmxError
from ...graph import Tensor
from .. import tflite_slices as slices
from ..tflite_checks import (check_same_grid)
from ..tflite_registry import tflite_op


def _slice_op(reader, opname: str, inp: Tensor, out: Tensor, r) -> tuple:
    if r.out_shape != out.shape:
        raise DmxError(f"output shape {list(out.shape)} differs from the computed {list(r.out_shape)}")
    check_same_grid(opname, inp, out)
    return "strided_slice", {"begin": r.begin, "end": r.end, "step": r.step}, [inp.name]


@tflite_op("STRIDED_SLICE", "strided_slice", inputs=(4, 4))
def op_strided_slice(reader, op, ins, outs):
    reader._int8_io(ins, outs, int16=True)
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    begin, end, strides = (slices.const_ints(reader.g.tensors[n], w) for n, w in zip(ins[1:], ("begin", "end", "strides")))
    o = reader.options(op, tflite.StridedSliceOptions)
    masks = {} if o is None else {
        "begin_mask": o.BeginMask(), "end_mask": o.EndMask(), "ellipsis_mask": o.EllipsisMask(),
        "new_axis_mask": o.NewAxisMask(), "shrink_axis_mask": o.ShrinkAxisMask(),
        "offset": bool(o.Offset()) if hasattr(o, "Offset") else False}
    return _slice_op(reader, "STRIDED_SLICE", inp, out, slices.strided_slice(inp.shape, begin, end, strides, **masks))


@tflite_op("SLICE", "strided_slice", inputs=(3, 3))
def op_slice(reader, op, ins, outs):
    reader._int8_io(ins, outs, int16=True)
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    begin, size = (slices.const_ints(reader.g.tensors[n], w) for n, w in zip(ins[1:], ("begin", "size")))
    return _slice_op(reader, "SLICE", inp, out, slices.slice_(inp.shape, begin, size))


def _split_axis(inp: Tensor, axis_t: Tensor) -> int:
    rank = len(inp.shape)
    axis = slices.const_ints(axis_t, "axis")
    if len(axis) != 1 or not -rank <= axis[0] < rank:
        raise DmxError(f"axis {axis} must be one value in [{-rank}, {rank})")
    return axis[0] % rank


def _split(reader, opname: str, inp: Tensor, axis: int, sizes, outs) -> list:
    if len(sizes) != len(outs):
        raise DmxError(f"{len(sizes)} pieces but {len(outs)} output tensors")
    made = []
    for r, name in zip(slices.split(inp.shape, axis, sizes), outs):
        reader._int8_io([inp.name], [name], int16=True)
        made.append((*_slice_op(reader, opname, inp, reader.g.tensors[name], r), [name]))
    return made


@tflite_op("SPLIT", "strided_slice", inputs=(2, 2), many_outputs=True)
def op_split(reader, op, ins, outs):
    axis_t, inp = reader.g.tensors[ins[0]], reader.g.tensors[ins[1]]
    reader._int8_io([inp.name], [], int16=True)
    o = reader.options(op, tflite.SplitOptions)
    n = o.NumSplits() if o is not None else len(outs)
    axis = _split_axis(inp, axis_t)
    dim = inp.shape[axis]
    if n != len(outs) or n < 1 or dim % n:
        raise DmxError(f"num_splits {n} must equal the {len(outs)} outputs and divide the axis' {dim} elements")
    return _split(reader, "SPLIT", inp, axis, [dim // n] * n, outs)


@tflite_op("SPLIT_V", "strided_slice", inputs=(3, 3), many_outputs=True)
def op_split_v(reader, op, ins, outs):
    inp, axis_t = reader.g.tensors[ins[0]], reader.g.tensors[ins[2]]
    reader._int8_io([inp.name], [], int16=True)
    sizes = slices.const_ints(reader.g.tensors[ins[1]], "size_splits")
    axis = _split_axis(inp, axis_t)
    dim = inp.shape[axis]
    if sizes.count(-1) == 1:  # one size left for TFLite to infer
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    if any(s < 0 for s in sizes) or sum(sizes) != dim:
        raise DmxError(f"size_splits {sizes} do not add up to the axis' {dim} elements")
    return _split(reader, "SPLIT_V", inp, axis, sizes, outs)
