"""prelu: TFLite's int8 PRELU (reference_ops::BroadcastPrelu4DSlow), LEAKY_RELU, torch nn.PReLU.

x >= 0 (after the input offset): x * s_in / s_out; x < 0: x * (alpha + alpha_offset) * s_in * s_a / s_out,
each through its own multiplier (MultiplyByQuantizedMultiplier, double rounding), then the output
offset and int8 saturation. Alpha is broadcast as a table of `period` codes that repeats along the
flat output (a per-channel alpha of an NHWC tensor has period C). LEAKY_RELU is this op with
alpha = [1] and alpha_offset 0: x * 1 through the alpha multiplier s_in * alpha / s_out, which is
TFLite's QuantizeLeakyRelu to the bit. int16 (zero points 0) is the same arithmetic saturated to int16:
QuantizeLeakyRelu<int16_t> in LiteRT and TFLite Micro (TFLite's PRELU has no int16 kernel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._checks import same_shape
from ._requant import saturate
from ._spec import Ints, OpSpec


@dataclass(frozen=True)
class PreluAttrs:
    input_offset: int  # -zero point of the input
    alpha_offset: int  # -zero point of alpha
    output_offset: int
    multiplier_identity: int  # s_in / s_out, for x >= 0
    shift_identity: int
    multiplier_alpha: int  # s_in * s_alpha / s_out, for x < 0
    shift_alpha: int
    alpha: Ints  # int8 codes, repeating along the flat output (its length divides the output's size)


def _alpha_problem(alpha: np.ndarray, size: int) -> str | None:
    if alpha.size == 0 or size % alpha.size:
        return f"alpha of {alpha.size} values does not repeat evenly over the output's {size}"
    if alpha.min() < -128 or alpha.max() > 127:
        return "alpha codes must be int8"
    return None


@register
class Prelu(OpSpec):
    kind = "prelu"
    summary = "int8 parametric ReLU with a broadcast alpha (PRELU, LEAKY_RELU)"
    Attrs = PreluAttrs
    targets = ("c", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: TFLite's LEAKY_RELU (QuantizeLeakyRelu<int16_t>)

    def inplace(self, op) -> bool:
        return True  # one value in, one value out, same bytes per value

    def check(self, op, ins, out):
        return same_shape(ins, out) or _alpha_problem(np.asarray(op.a.alpha, dtype=np.int64), out.size)

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64) + a.input_offset
        alpha = np.asarray(a.alpha, dtype=np.int64) + a.alpha_offset
        alpha = np.tile(alpha, x.size // alpha.size).reshape(x.shape)
        pos = mbqm(x, a.multiplier_identity, a.shift_identity)
        neg = mbqm(x * alpha, a.multiplier_alpha, a.shift_alpha)
        return saturate(np.where(x >= 0, pos, neg) + a.output_offset, out_t.dtype)

    def kernel_params(self, graph, op):
        a = op.a
        alpha = np.asarray(a.alpha, dtype=np.int8)
        return {"outer": graph.tensors[op.outputs[0]].size // alpha.size, "period": int(alpha.size),
                "input_offset": a.input_offset, "alpha_offset": a.alpha_offset, "output_offset": a.output_offset,
                "mult_identity": a.multiplier_identity, "shift_identity": a.shift_identity,
                "mult_alpha": a.multiplier_alpha, "shift_alpha": a.shift_alpha, "alpha": alpha}
