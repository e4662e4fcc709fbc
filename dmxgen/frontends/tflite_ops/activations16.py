"""TFLite's int16 LOGISTIC, TANH and SOFTMAX as `logistic16`, `tanh16` and `softmax16` ops. Their int8
mappings (tables.py's `lut`, tflite.py's op_softmax) hand int16 inputs over to these functions, as an
operator is registered once.

The attrs are the Prepare's OpData (activations.cc in LiteRT, logistic_common.cc / tanh.cc in TFLite
Micro, which agree): a power-of-two input scale whose input_left_shift (12 + log2 scale) the kernel
takes as is (LOGISTIC: 0, TANH: 0 or 1) gives multiplier 0; any other scale a multiplier onto
1/(3 * 4096) units, doubled while at most 32767 / 2. Both runtimes want zero points 0 and the output
on 1/32768: LiteRT's LOGISTIC compares the scale exactly, TFLite Micro's and both TANHs within
CheckedLog2's tolerance. SOFTMAX wants the output on 1/32768 within 0.1%; LiteRT multiplies the
input scale by beta in float and fills its tables in double, TFLite Micro the other way round.
"""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph import QuantParams
from ...graph.fixedpoint import quantize_multiplier
from ...graph.quant_params import checked_log2
from ...ops._act16 import fits_int32

OUTPUT_LOG2 = -15  # kOutputFractionalBits
POT_SHIFTS = {"LOGISTIC": (0,), "TANH": (0, 1)}  # the shifts each kernel's power-of-two path takes


def input_rescale(scale: float, opname: str) -> tuple[int, int]:
    """(input_multiplier, input_left_shift) as the Prepare computes them from the float32 input scale."""
    log2 = checked_log2(scale)
    if log2 is not None and 12 + log2 in POT_SHIFTS[opname]:
        return 0, 12 + log2
    multiplier, shift = float(np.float32(scale)) * 4096.0 * 3.0, 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    return int(multiplier), shift


def _quant(reader, ins, outs) -> tuple[QuantParams, QuantParams]:
    reader._int8_io(ins, outs, int16=True)
    qs = []
    for name, role in ((ins[0], "input"), (outs[0], "output")):
        q = reader._need_quant(reader.g.tensors[name], role)
        if q.scale.size != 1:
            raise DmxError(f"{role} tensor {name!r} has {q.scale.size} scales; an activation is quantized per tensor")
        if q.zp != 0:
            raise DmxError(f"{role} zero point {q.zp}; TFLite's int16 activations are symmetric (zero point 0)")
        qs.append(q)
    return qs[0], qs[1]


def _map(reader, ins, outs, opname: str, kind: str):
    qi, qo = _quant(reader, ins, outs)
    exact = opname == "LOGISTIC" and reader.semantics == "tflite"  # LiteRT's SigmoidPrepare: scale == 1/32768
    if (np.float32(qo.s) != np.float32(2.0**OUTPUT_LOG2)) if exact else checked_log2(qo.s) != OUTPUT_LOG2:
        runtime = "LiteRT" if reader.semantics == "tflite" else "TFLite Micro"
        raise DmxError(f"output scale {qo.s:g}; {runtime}'s int16 {opname} writes 1/32768 (zero point 0)")
    multiplier, shift = input_rescale(qi.s, opname)
    if not fits_int32(multiplier, shift):
        raise DmxError(f"input scale {qi.s:g} is too large: TFLite's int16 {opname} rescales the codes by "
                       f"{multiplier} in int32, which overflows (scales below {65536 / 12288:.4g} fit)")
    return kind, {"input_multiplier": multiplier, "input_left_shift": shift}, ins[:1]


def op_logistic16(reader, op, ins, outs):
    return _map(reader, ins, outs, "LOGISTIC", "logistic16")


def op_tanh16(reader, op, ins, outs):
    return _map(reader, ins, outs, "TANH", "tanh16")


def op_softmax16(reader, op, ins, outs):
    o = reader.options(op, tflite.SoftmaxOptions, required=True)
    qi, qo = _quant(reader, ins, outs)
    f = np.float32
    if abs(f(qo.s) - f(2.0**OUTPUT_LOG2)) > f(0.001) * f(2.0**OUTPUT_LOG2):  # TF_LITE_ENSURE_NEAR
        raise DmxError(f"output scale {qo.s:g}; TFLite's int16 SOFTMAX writes 1/32768 (within 0.1%, zero point 0)")
    beta = f(o.Beta())
    if not np.isfinite(beta) or beta <= 0:
        raise DmxError(f"softmax beta {float(beta):g} is not a finite positive number")
    tflm = reader.semantics == "tflm"
    product = float(f(qi.s)) * float(beta) if tflm else float(f(qi.s) * beta)  # double / float
    real = product / (10.0 / 65535.0)
    if real >= 2.0**30:  # QuantizeMultiplier's shift would pass 30
        raise DmxError(f"input scale {qi.s:g} times beta {float(beta):g} is too large for TFLite's int16 SOFTMAX")
    multiplier, shift = quantize_multiplier(real)
    return "softmax16", {"input_multiplier": multiplier, "input_shift": shift,
                         "tables": "float" if tflm else "double"}, ins[:1]
