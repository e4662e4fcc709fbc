"""TFLite's 16x8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: which bias they take, which rounding it implies.

int16 activations (zero point 0), int8 weights, an int64 bias or none. Both interpreters then
accumulate in int64 and requantize with the 64-bit MultiplyByQuantizedMultiplier, whose
multiplier is reduced to 16 bits (rounding "reduced"), except LiteRT's FULLY_CONNECTED, which
rounds once with the full multiplier, ties away from zero, as it does for int8 ("away"). TFLite Micro also takes
an int32 bias for CONV_2D and FULLY_CONNECTED (or no bias with quantized_bias_type INT32): it
then accumulates in int32 and rounds twice ("double"). LiteRT reads that int32 bias as int64
(its outputs are garbage), and TFLite Micro's DEPTHWISE_CONV_2D does the same, while LiteRT's
refuses it. tests/ops/test_conv2d.py, test_depthwise_conv2d.py and test_fully_connected.py
(their int16 sections) hold every branch against both interpreters.
"""
from __future__ import annotations

import numpy as np

from ..errors import DmxError
from ..graph import Tensor

INT32_BIAS_OPS = ("CONV_2D", "FULLY_CONNECTED")  # TFLite Micro's int32-accumulator path
ACC_BOUND = 2**47  # the accumulators TFLite's 64-bit MultiplyByQuantizedMultiplier is written for
MAX_SHIFT = 7  # its left shift: below 8 (a real multiplier below 128)
TENSOR_TYPE_INT32 = 2  # tflite.TensorType.INT32, as quantized_bias_type


def rounding_16x8(opname: str, w: Tensor, bias: Tensor | None, axis: int, shift, semantics: str,
                  quantized_bias_type: int = 0) -> str:
    """Check a 16x8 layer's bias, accumulator bound and shifts; return its `rounding` attr."""
    if bias is not None and (bias.data is None or bias.dtype not in ("int64", "int32")):
        raise DmxError(f"bias {bias.name!r} ({bias.dtype}) of a 16x8 {opname} must be a constant int64 vector "
                       "(or int32 for TFLite Micro)")
    if bias is not None:
        int32_acc = bias.dtype == "int32"
    else:  # TFLite Micro reads quantized_bias_type for a layer without bias; LiteRT does not
        int32_acc = semantics == "tflm" and quantized_bias_type == TENSOR_TYPE_INT32
    if int32_acc and opname not in INT32_BIAS_OPS:
        raise DmxError(f"an int32 bias on a 16x8 {opname} is not supported: LiteRT refuses it and TFLite Micro "
                       "reads it as int64; the bias must be int64")
    if int32_acc and semantics != "tflm":
        raise DmxError(f"an int32 bias on a 16x8 {opname} is TFLite Micro's (int32 accumulators); LiteRT reads it "
                       "as int64: load the model with semantics 'tflm', or give it an int64 bias")
    taps = np.abs(np.moveaxis(w.data.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)).sum(axis=1)
    b = np.zeros_like(taps) if bias is None else np.abs(bias.data.astype(np.float64).reshape(-1))  # no int64 abs
    worst = float(np.max(taps * 32768 + b))  # a bound: exact enough to compare with 2**47
    if worst >= ACC_BOUND:
        raise DmxError(f"the accumulators of this 16x8 {opname} reach {worst:.4g}, beyond the 2**47 TFLite's int64 "
                       "requantization is written for (is the bias in the int64 scale s_in * s_w?)")
    if int32_acc:
        return "double"
    if int(np.max(shift)) > MAX_SHIFT:
        raise DmxError(f"a 16x8 {opname} requantizes with a left shift of {int(np.max(shift))}; TFLite's int64 "
                       f"kernel takes at most {MAX_SHIFT} (an output scale far too small for its inputs?)")
    return "away" if opname == "FULLY_CONNECTED" and semantics == "tflite" else "reduced"
