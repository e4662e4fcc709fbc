"""softmax16: TFLite's int16 SOFTMAX over the last axis (reference_ops::SoftmaxInt16).

Per row: x - max rescaled by MultiplyByQuantizedMultiplier so that [-65535, 0] is [-10, 0], exp read
from a 513-entry table interpolated on the low 7 bits, the sum of exps normalised and its reciprocal
read from a second table (1 / (1 + x) on [0, 1]), each exp times it rounded onto 1/32768, [0, 32767].
The tables are the Prepare's LUTPopulate<int16_t>: LiteRT computes them in double, TFLite Micro in
float (the `tables` attr; the reciprocal tables differ at two entries), so both are built here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

import numpy as np

from .._libm import expf
from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._spec import OpSpec

LUT_STEPS = 512  # the table has LUT_STEPS + 1 entries: 9 bits of index, 7 of interpolation
MAX_DEPTH = 65536  # the int32 sum of the exps (each at most 32767) cannot wrap
RANGE = 65535  # int16 max - min


def _round(v: float) -> float:
    """TfLiteRound (std::round) of a float or double value."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def lut_populate(input_scale: float, input_zp: int, output_scale: float, transform: Callable,
                 ftype: Callable) -> np.ndarray:
    """TFLite's LUTPopulateInt16<FloatT> with FloatT = ftype (np.float32 or float): `transform` sampled
    at the 513 steps of the int16 input range, each step's value biased by half the error its
    interpolation makes at the step's midpoint."""
    f = ftype
    input_min, input_max = f(input_scale) * f(-32768 - input_zp), f(input_scale) * f(32767 - input_zp)
    output_min, output_max = f(output_scale) * f(-32768), f(output_scale) * f(32767)
    step = (input_max - input_min) / f(LUT_STEPS)
    half = step / f(2)
    inv = f(65536) / (output_max - output_min)

    def rnd(v):
        return f(_round(float(v)))

    def clamp(v) -> int:
        return int(min(max(float(v), -32768.0), 32767.0))

    lut = np.zeros(LUT_STEPS + 1, np.int16)
    for i in range(LUT_STEPS):
        val = f(transform(input_min + f(i) * step))
        mid = f(transform(input_min + f(i) * step + half))
        nxt = f(transform(input_min + f(i + 1) * step))
        interp = rnd((nxt * inv + rnd(val * inv)) / f(2))
        bias = rnd((interp - rnd(mid * inv)) / f(2))
        lut[i] = clamp(rnd(val * inv) - bias)
    lut[LUT_STEPS] = clamp(rnd(f(transform(input_max)) * inv))
    return lut


@lru_cache(maxsize=None)
def tables(precision: str) -> tuple[np.ndarray, np.ndarray]:
    """(exp on [-10, 0], 1 / (1 + x) on [0, 1]), both onto [-1, 1] as SoftmaxPrepare fills them."""
    if precision == "float":  # TFLite Micro: float, expf
        f = np.float32
        exp = lut_populate(f(10) / f(RANGE), 32767, f(2) / f(RANGE), expf, f)
        recip = lut_populate(f(1) / f(RANGE), -32768, f(2) / f(RANGE), lambda v: f(1) / (f(1) + f(v)), f)
    else:  # LiteRT: double, exp
        exp = lut_populate(10 / RANGE, 32767, 2 / RANGE, math.exp, float)
        recip = lut_populate(1 / RANGE, -32768, 2 / RANGE, lambda v: 1 / (1 + v), float)
    for t in (exp, recip):
        t.setflags(write=False)
    return exp, recip


def lut_lookup(v, lut: np.ndarray) -> np.ndarray:
    """LUTLookup: the int16 v's top 9 bits index the table, its low 7 interpolate to the next entry."""
    v = np.asarray(v, np.int64)
    index, offset = 256 + (v >> 7), v & 0x7F
    base = lut[index].astype(np.int64)
    return base + (((lut[index + 1] - base) * offset + 64) >> 7)


def _clz32(x: np.ndarray) -> np.ndarray:
    return 32 - np.array([int(v).bit_length() for v in x.reshape(-1)], np.int64).reshape(x.shape)


@dataclass(frozen=True)
class Softmax16Attrs:
    input_multiplier: int  # (x - max) * input scale * beta onto 10 / 65535 units (QuantizeMultiplier)
    input_shift: int
    tables: Literal["double", "float"] = "double"  # LiteRT's tables, or TFLite Micro's


@register
class Softmax16(OpSpec):
    kind = "softmax16"
    summary = "int16 softmax over the last axis (TFLite's exp and reciprocal tables, output 1/32768)"
    Attrs = Softmax16Attrs
    targets = ("c", "hls", "tflite")
    dtypes = ("int16",)

    def check(self, op, ins, out):
        if ins[0].shape != out.shape:
            return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
        if ins[0].dtype != "int16":
            return f"input is {ins[0].dtype}; softmax16 reads int16 codes"
        if not ins[0].shape:
            return "the input has no axis to normalise"
        if ins[0].shape[-1] > MAX_DEPTH:
            return f"rows of {ins[0].shape[-1]} values can overflow the int32 sum of exps (at most {MAX_DEPTH})"
        a = op.a
        if not (0 <= a.input_multiplier < 2**31 and -31 <= a.input_shift <= 30):
            return f"input_multiplier {a.input_multiplier}, input_shift {a.input_shift} are not a Q31 multiplier"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        exp_lut, recip_lut = tables(a.tables)
        x = args[0].astype(np.int64).reshape(-1, out_t.shape[-1])
        diff = mbqm(x - x.max(axis=1, keepdims=True), a.input_multiplier, a.input_shift)
        exps = lut_lookup(np.clip(diff + 32767, -32768, 32767), exp_lut)
        total = exps.sum(axis=1, keepdims=True)
        headroom = _clz32(total)  # the sum's leading zeros: it is normalised to [1, 2) in Q1.15 below
        shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
        recip = lut_lookup(np.clip(shifted - ((1 << 15) + (1 << 16)), -32768, 32767), recip_lut)
        right = 31 - headroom
        y = (exps * recip + (np.int64(1) << (right - 1))) >> right
        return np.clip(y, 0, 32767).astype(np.int16).reshape(out_t.shape)

    def kernel_params(self, graph, op):
        a = op.a
        t = graph.tensors[op.inputs[0]]
        exp_lut, recip_lut = tables(a.tables)
        return {"rows": t.size // t.shape[-1], "depth": t.shape[-1], "input_multiplier": a.input_multiplier,
                "input_shift": a.input_shift, "exp_lut": exp_lut, "recip_lut": recip_lut}
