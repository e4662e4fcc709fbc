"""SOFTMAX, PRELU and LEAKY_RELU."""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph.quant_params import (softmax_gemmlowp_params)
from ..tflite_registry import tflite_op


@tflite_op("SOFTMAX", "softmax", "softmax_gemmlowp", "softmax16", inputs=(1, 1))
def op_softmax(reader, op, ins, outs):
    if reader.g.tensors[ins[0]].dtype == "int16":  # TFLite's int16 kernel (its own tables)
        from .activations16 import op_softmax16
        return op_softmax16(reader, op, ins, outs)
    reader._int8_io(ins, outs)
    o = reader.options(op, tflite.SoftmaxOptions, required=True)
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    if qo.zp != -128 or abs(float(qo.s) - 1 / 256) > 1e-9:
        raise DmxError(f"int8 softmax output must have scale 1/256 and zero point -128, got {qo.describe()}")
    beta = float(o.Beta())
    if not np.isfinite(beta):
        raise DmxError(f"softmax beta {beta} is not a finite number")
    if beta * float(qi.s) * (1 << 26) <= 1.0:  # LiteRT and TFLM abort (QuantizeMultiplierGreaterThanOne)
        raise DmxError(f"softmax beta {beta:g} times input scale {float(qi.s):g} is below 2^-26, "
                       "which TFLite's softmax cannot prepare")
    attrs = {"beta": beta, "input_scale": float(qi.s)}
    if reader.semantics == "tflm":  # TFLite Micro's integer-only softmax
        attrs.update(softmax_gemmlowp_params(beta, float(qi.s)))
        return "softmax_gemmlowp", attrs, ins[:1]
    # TFLite's int8 softmax (even with reference kernels) uses a float
    # exp table of 256 entries: table[255 - d] = expf(-scale*beta*d).
    attrs["table"] = _softmax_float_table(beta, float(qi.s))
    attrs["output_scale"] = float(qo.s)
    return "softmax", attrs, ins[:1]


@tflite_op("PRELU", "prelu", inputs=(2, 2))
def op_prelu(reader, op, ins, outs):
    from ..tflite_prelu import prelu_attrs  # the broadcast alpha as a repeating table

    reader._int8_io(ins, outs, 2)
    inp, alpha, out = (reader.g.tensors[n] for n in (ins[0], ins[1], outs[0]))
    qi, qa, qo = reader._need_quant(inp, "input"), reader._need_quant(alpha, "alpha"), reader._need_quant(out, "output")
    return "prelu", prelu_attrs(inp, alpha, out, qi, qa, qo, float32=reader.semantics == "tflite"), ins[:1]


@tflite_op("LEAKY_RELU", "prelu", inputs=(1, 1))
def op_leaky_relu(reader, op, ins, outs):
    from ..tflite_prelu import leaky_relu_attrs

    reader._int8_io(ins, outs, int16=True)  # int16: QuantizeLeakyRelu<int16_t>, the same multipliers
    o = reader.options(op, tflite.LeakyReluOptions, required=True)
    inp, out = reader.g.tensors[ins[0]], reader.g.tensors[outs[0]]
    qi, qo = reader._need_quant(inp, "input"), reader._need_quant(out, "output")
    return "prelu", leaky_relu_attrs(float(o.Alpha()), inp, out, qi, qo, reader.semantics == "tflite"), ins[:1]


def _softmax_float_table(beta: float, input_scale: float) -> np.ndarray:
    """TFLite's PopulateSoftmaxLookupTable, computed with float32 arithmetic and libm's expf."""
    from ..._libm import expf

    with np.errstate(over="ignore"):  # float32 overflow to -inf is C's too: expf(-inf) is 0
        scale = np.float32(-np.float32(input_scale) * np.float32(beta))
        if not np.isfinite(scale):
            raise DmxError(f"softmax beta {beta:g} times input scale {input_scale:g} overflows float32")
        table = np.zeros(256, np.float32)
        for val in range(256):
            table[255 - val] = expf(np.float32(scale * np.float32(val)))
    return table
