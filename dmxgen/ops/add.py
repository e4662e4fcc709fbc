"""add: TFLite's int8 reference ADD with broadcasting (both inputs rescaled to a common grid).

int16 (16x8) runs the same arithmetic with left shift 15, or (`scaling="pot"`: LiteRT with
pot_scale_int16 and power-of-two scales) shifts one input right by a power of two and adds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..graph.fixedpoint import _wrap32, multiply_by_quantized_multiplier as mbqm, rounding_divide_by_pot
from . import register
from ._families import BinarySpec
from ._requant import clamp


@dataclass(frozen=True)
class AddAttrs:
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int  # 20: both inputs are widened before rescaling
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    activation: str
    act_min: int
    act_max: int
    # "pot": int16 only; the input shifts are log2(s_in / s_out) <= 0, the multipliers, offsets and left shift unused
    scaling: Literal["general", "pot"] = "general"


def pot_operands(x, y, a):
    """The int16 power-of-two path's operands: each input rounded right by -its shift (one shift is 0)."""
    return (rounding_divide_by_pot(x.astype(np.int64), -a.input1_shift),
            rounding_divide_by_pot(y.astype(np.int64), -a.input2_shift))


def kernel_constants(a) -> dict:
    """The general kernel's constants (the C kernels' struct members). The power-of-two path is the
    general one with left shift 1, multipliers 2^30 (one half) and output shift 1: 2x times one half
    is x exactly, so each input is rounded right once by its shift, and the output rescale is exact
    (tests/ops/test_add.py holds the two equal for every int16 code)."""
    if a.scaling == "pot":
        half = 1 << 30
        return {"in1_offset": 0, "in2_offset": 0, "left_shift": 1, "in1_mult": half, "in1_shift": a.input1_shift,
                "in2_mult": half, "in2_shift": a.input2_shift, "out_mult": half, "out_shift": 1, "out_offset": 0}
    return {"in1_offset": a.input1_offset, "in2_offset": a.input2_offset, "left_shift": a.left_shift,
            "in1_mult": a.input1_multiplier, "in1_shift": a.input1_shift, "in2_mult": a.input2_multiplier,
            "in2_shift": a.input2_shift, "out_mult": a.output_multiplier, "out_shift": a.output_shift,
            "out_offset": a.output_offset}


@register
class Add(BinarySpec):
    kind = "add"
    summary = "elementwise add with broadcasting"
    Attrs = AddAttrs
    targets = ("c", "c_mve", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: TFLite's 16x8 ADD (C, MVE: s16/add_mve.c.j2, HLS)
    mve_dtypes = dtypes

    def check(self, op, ins, out):
        a = op.a
        if a.scaling == "pot":
            if out.dtype != "int16":
                return f"scaling 'pot' is TFLite's int16 path; the output is {out.dtype}"
            if min(a.input1_shift, a.input2_shift) < -15:
                return f"power-of-two shifts {a.input1_shift}, {a.input2_shift}: LiteRT's int16 path shifts by at most 15"
            if not (a.input1_shift == 0 or a.input2_shift == 0) or max(a.input1_shift, a.input2_shift) > 0:
                return f"power-of-two shifts {a.input1_shift}, {a.input2_shift}: one must be 0, both <= 0"
        return super().check(op, ins, out)

    def reference(self, op, args, out_t):
        x, y = args
        a = op.a
        if a.scaling == "pot":
            p, q = pot_operands(x, y, a)
            return clamp(np.broadcast_to(p + q, out_t.shape), a.act_min, a.act_max, out_t.dtype)
        x1 = (x.astype(np.int64) + a.input1_offset) * (1 << a.left_shift)
        x2 = (y.astype(np.int64) + a.input2_offset) * (1 << a.left_shift)
        s1 = mbqm(x1, a.input1_multiplier, a.input1_shift)
        s2 = mbqm(x2, a.input2_multiplier, a.input2_shift)
        raw = mbqm(_wrap32(s1 + s2), a.output_multiplier, a.output_shift) + a.output_offset
        return clamp(np.broadcast_to(raw, out_t.shape), a.act_min, a.act_max, out_t.dtype)
