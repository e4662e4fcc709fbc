"""PAD, PADV2 and MIRROR_PAD."""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ..tflite_registry import tflite_op


@tflite_op("PAD", "pad", inputs=(2, 2))
def op_pad(reader, op, ins, outs, value=None):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    p = _pad_amounts(reader, ins, outs)
    if inp.dtype != out.dtype:
        raise DmxError(f"PAD changes the dtype ({inp.dtype} -> {out.dtype})")
    if inp.dtype in ("int8", "int16"):
        pad_value = reader._need_quant(out, "output").zp if value is None else value
    elif inp.dtype == "float32":
        pad_value = 0.0 if value is None else value
    else:
        raise DmxError(f"PAD of {inp.dtype} is not supported")
    return "pad", {"paddings": tuple(map(tuple, p.tolist())), "value": pad_value}, ins[:1]


@tflite_op("MIRROR_PAD", "mirror_pad", inputs=(2, 2))
def op_mirror_pad(reader, op, ins, outs):
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    p = _pad_amounts(reader, ins, outs)
    if inp.dtype != "int8" or out.dtype != "int8":
        raise DmxError(f"MIRROR_PAD of {inp.dtype} -> {out.dtype} is not supported (int8 only)")
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    if qi.s != qo.s or qi.zp != qo.zp:
        raise DmxError("MIRROR_PAD with different input and output quantization is not supported")
    o = reader.options(op, tflite.MirrorPadOptions)
    mirror = "symmetric" if o is not None and o.Mode() == tflite.MirrorPadMode.SYMMETRIC else "reflect"
    return "mirror_pad", {"paddings": tuple(map(tuple, p.tolist())), "mirror": mirror}, ins[:1]


def _pad_amounts(reader, ins, outs) -> np.ndarray:
    """PAD's and MIRROR_PAD's [rank, 2] constant amounts, checked against the output's shape."""
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    pads = reader.g.tensors[ins[1]]
    if pads.data is None or pads.dtype not in ("int32", "int64"):
        raise DmxError(f"padding amounts {pads.name!r} must be a constant int32 or int64 tensor")
    if pads.shape != (len(inp.shape), 2):
        raise DmxError(f"padding amounts of shape {list(pads.shape)} for a {len(inp.shape)}-D input; "
                       f"TFLite needs [{len(inp.shape)}, 2]")
    p = pads.data.reshape(-1, 2).astype(np.int64)
    if (p < 0).any():
        raise DmxError(f"negative padding {int(p.min())}")
    want = tuple(int(d + a + b) for d, (a, b) in zip(inp.shape, p))
    if want != out.shape:
        raise DmxError(f"padded shape {list(want)} differs from output shape {list(out.shape)}")
    return p


@tflite_op("PADV2", "pad", inputs=(3, 3))
def op_padv2(reader, op, ins, outs):
    c = reader.g.tensors[ins[2]]
    if c.data is None or c.size != 1:
        raise DmxError(f"PADV2's constant value {c.name!r} must be a constant of one value")
    if c.dtype != reader.g.tensors[ins[0]].dtype:
        raise DmxError(f"PADV2's constant value is {c.dtype}, its input {reader.g.tensors[ins[0]].dtype}")
    v = c.data.reshape(-1)[0]
    if c.dtype in ("int8", "int16"):
        qc, qo = reader._need_quant(c, "PADV2 constant"), reader._need_quant(reader.g.tensors[outs[0]], "output")
        if qc.zp != qo.zp or qc.s != qo.s:  # LiteRT and TFLM refuse this too (pad.cc, pad_common.cc)
            raise DmxError(f"PADV2's constant {c.name!r} is quantized ({qc.describe()}) unlike the output "
                           f"({qo.describe()})")
    return op_pad(reader, op, ins, outs, value=float(v) if c.dtype == "float32" else int(v))
