"""RESHAPE, TRANSPOSE, SQUEEZE, EXPAND_DIMS and CONCATENATION: operators that move values."""
from __future__ import annotations

import numpy as np
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType

from ...errors import DmxError
from ...graph import QuantParams, Tensor
from ...graph.quant_params import (requant_params)
from .. import tflite_slices as slices
from ..tflite_checks import (check_same_grid)
from ..tflite_registry import _ACTNAME, tflite_op


@tflite_op("RESHAPE", "reshape", inputs=(1, 2))
def op_reshape(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if inp.size != out.size:
        raise DmxError(f"reshape from {list(inp.shape)} to {list(out.shape)} changes the element count")
    if inp.dtype != out.dtype:
        raise DmxError("reshape changes the dtype")
    return "reshape", {}, ins[:1]


@tflite_op("TRANSPOSE", "transpose", inputs=(2, 2))
def op_transpose(reader, op, ins, outs):
    reader._int8_io(ins, outs, int16=True)
    inp, out, perm = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]], reader.g.tensors[ins[1]]
    if perm.data is None or perm.dtype not in ("int32", "int64") or perm.data.ndim != 1:
        raise DmxError(f"permutation {perm.name!r} must be a constant 1-D int32 or int64 tensor")
    reader._need_quant(inp, "input")
    reader._need_quant(out, "output")
    check_same_grid("TRANSPOSE", inp, out)
    rank = len(inp.shape)
    p = [int(v) + rank if int(v) < 0 else int(v) for v in perm.data]  # TFLite allows negative dims
    return "transpose", {"perm": tuple(p)}, ins[:1]


def _reshape_to(reader, opname: str, ins, outs, want) -> tuple:
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    if tuple(want) != out.shape:
        raise DmxError(f"output shape {list(out.shape)} differs from the computed {list(want)}")
    if inp.dtype != out.dtype:
        raise DmxError(f"{opname} changes the dtype")
    check_same_grid(opname, inp, out)
    return "reshape", {}, ins[:1]


@tflite_op("SQUEEZE", "reshape", inputs=(1, 1))
def op_squeeze(reader, op, ins, outs):
    shape = reader.g.tensors[ins[0]].shape
    o = reader.options(op, tflite.SqueezeOptions)
    dims = [int(d) for d in o.SqueezeDimsAsNumpy()] if o is not None and o.SqueezeDimsLength() else []
    bad = [d for d in dims if not -len(shape) <= d < len(shape) or shape[d] != 1]
    if bad:
        raise DmxError(f"squeeze_dims {dims}: dim {bad[0]} is not a dim of size 1 of {list(shape)}")
    drop = {d % len(shape) for d in dims} if dims else {i for i, d in enumerate(shape) if d == 1}
    return _reshape_to(reader, "SQUEEZE", ins, outs, [d for i, d in enumerate(shape) if i not in drop])


@tflite_op("EXPAND_DIMS", "reshape", inputs=(2, 2))
def op_expand_dims(reader, op, ins, outs):
    shape = list(reader.g.tensors[ins[0]].shape)
    axis = slices.const_ints(reader.g.tensors[ins[1]], "axis")
    if len(axis) != 1 or not -len(shape) - 1 <= axis[0] <= len(shape):
        raise DmxError(f"axis {axis} must be one value in [{-len(shape) - 1}, {len(shape)}]")
    at = axis[0] + len(shape) + 1 if axis[0] < 0 else axis[0]
    return _reshape_to(reader, "EXPAND_DIMS", ins, outs, shape[:at] + [1] + shape[at:])


@tflite_op("CONCATENATION", "concat", "requantize", inputs=(1, 4096))
def op_concatenation(reader, op, ins, outs):
    reader._int8_io(ins, outs, len(ins), int16=True)
    out = reader.g.tensors[outs[0]]
    o = reader.options(op, tflite.ConcatenationOptions)
    if o is not None and o.FusedActivationFunction() != ActivationFunctionType.NONE:
        raise DmxError(f"fused activation {_ACTNAME.get(o.FusedActivationFunction())} is not supported "
                       "(only NONE)")
    rank, axis = len(out.shape), o.Axis() if o is not None else 0
    if not -rank <= axis < rank:
        raise DmxError(f"axis {axis} is outside [{-rank}, {rank})")
    qo = reader._need_quant(out, "output")
    made, names = [], []
    for k, name in enumerate(ins):  # an input on another grid is requantized first, as torch.cat's export does
        qi = reader._need_quant(reader.g.tensors[name], "input")
        if (np.float32(qi.s), qi.zp) == (np.float32(qo.s), qo.zp):
            names.append(name)
            continue
        t = reader.g.tensors[name]
        moved = f"{outs[0]}.in{k}"
        reader.g.add_tensor(Tensor(moved, t.shape, "int8", QuantParams(qo.scale, qo.zero_point)))
        m, s = requant_params(qi.s, qo.s)
        made.append(("requantize", {"input_offset": -qi.zp, "output_offset": qo.zp, "multiplier": m, "shift": s},
                     [name], [moved]))
        names.append(moved)
    return made + [("concat", {"axis": axis % rank}, names, outs)]
