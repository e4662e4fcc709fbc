"""BATCH_MATMUL of two activations."""
from __future__ import annotations

import tflite

from ...errors import DmxError
from ..tflite_registry import tflite_op


@tflite_op("BATCH_MATMUL", "batch_matmul", inputs=(2, 2))
def op_batch_matmul(reader, op, ins, outs):
    from ...graph.quant_params import batch_matmul_params

    reader._int8_io(ins, outs, 2)
    o = reader.options(op, tflite.BatchMatMulOptions)
    (lhs, rhs), out = (reader.g.tensors[n] for n in ins[:2]), reader.g.tensors[outs[0]]
    for side, t in (("lhs", lhs), ("rhs", rhs)):
        if t.is_const:  # the kernels take two activations; a constant rhs is a FULLY_CONNECTED
            raise DmxError(f"{side} {t.name!r} is a constant; BATCH_MATMUL of a constant is not supported")
    qa, qb, qo = (reader._need_quant(t, side) for t, side in ((lhs, "lhs"), (rhs, "rhs"), (out, "output")))
    for t, q in ((lhs, qa), (rhs, qb), (out, qo)):
        if q.per_channel:  # TFLite's int8 kernel reads one scale per tensor
            raise DmxError(f"tensor {t.name!r} is quantized per channel; BATCH_MATMUL takes one scale per tensor")
    adj_x, adj_y = (int(o.AdjX()), int(o.AdjY())) if o is not None else (0, 0)
    attrs = {"adj_x": adj_x, "adj_y": adj_y, "lhs_offset": -qa.zp, "rhs_offset": -qb.zp,
             "output_offset": qo.zp, "act_min": -128, "act_max": 127,  # no fused activation
             **batch_matmul_params(qa.s, qb.s, qo.s)}
    return "batch_matmul", attrs, ins[:2]
