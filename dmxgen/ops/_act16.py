"""The shared part of TFLite's int16 LOGISTIC and TANH (ops/logistic16.py, ops/tanh16.py).

Both kernels (reference_integer_ops::Logistic / Tanh on int16, the same in LiteRT and TFLite Micro)
rescale each code by the Prepare's input multiplier and left shift (multiplier 0: a power-of-two
scale, 3 << shift), then interpolate TFLite's 256-entry sigmoid table; output scale 1/32768, zp 0.
The arithmetic is ops/_lstm_int.py's (the LSTM gates run it too); here only the attrs and checks.
"""
from __future__ import annotations

from dataclasses import dataclass

from ._spec import OpSpec

INT32_MAX = 2**31 - 1


def rescale(multiplier: int, left_shift: int) -> tuple[int, int, int]:
    """The kernels' (multiplier, shift, rounding) for the OpData: multiplier 0 means 3 << left_shift."""
    if multiplier == 0:
        multiplier, left_shift = 3 << left_shift, 0
    return multiplier, left_shift, (1 << (left_shift - 1)) if left_shift > 0 else 0


def fits_int32(multiplier: int, left_shift: int) -> bool:
    """Does code * multiplier + rounding stay in int32 for every int16 code (TFLite computes in int32)?"""
    m, _, rounding = rescale(multiplier, left_shift)
    return 32768 * m + rounding <= INT32_MAX


@dataclass(frozen=True)
class Act16Attrs:
    input_multiplier: int  # the Prepare's OpData: 0 for a power-of-two input scale
    input_left_shift: int


class Act16(OpSpec):
    """An elementwise int16 -> int16 activation through the rescaled input (subclasses: the kernel)."""

    Attrs = Act16Attrs
    targets = ("c", "hls", "tflite")
    dtypes = ("int16",)

    def inplace(self, op) -> bool:
        return True  # elementwise: element i is read before it is written

    def check(self, op, ins, out):
        if ins[0].shape != out.shape:
            return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
        if ins[0].dtype != "int16":
            return f"input is {ins[0].dtype}; {self.kind} reads int16 codes"
        a = op.a
        if a.input_multiplier < 0 or not 0 <= a.input_left_shift <= 31:
            return (f"input_multiplier {a.input_multiplier}, input_left_shift {a.input_left_shift}: both must be "
                    "at least 0, the shift at most 31")
        if not fits_int32(a.input_multiplier, a.input_left_shift):
            return (f"input_multiplier {a.input_multiplier}, input_left_shift {a.input_left_shift}: "
                    "the rescaled int16 codes overflow int32")
        return None

    def kernel_params(self, graph, op):
        a = op.a
        return {"size": graph.tensors[op.outputs[0]].size, "input_multiplier": a.input_multiplier,
                "input_left_shift": a.input_left_shift}
