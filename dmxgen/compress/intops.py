"""The integer requantization of the exported ops, in torch, for the fake-quantized forward.

TFLite's MultiplyByQuantizedMultiplier rounds twice (a rounding doubling
high multiply, then a rounding right shift), which differs from one float
rounding whenever the first rounding lands on a half: with a right shift of
3 bits that is one value in sixteen. The layers therefore compute their
forward values with these integer routines (the same arithmetic as
graph/fixedpoint.py, which tests hold equal) and keep float values only for
the gradient. The constants come from graph/quant_params.py, through here, for
both the layers and the exporter, so the two cannot drift apart, nor from the
TFLite frontend's.
"""
from __future__ import annotations

import torch

# The constants both frontends derive from scales (MUL in double, as TFLite Micro does) are graph/quant_params.py's.
from ..graph.quant_params import (  # noqa: F401 - re-exported for the layers and the exporter
    ADD_LEFT_SHIFT, activation_name, add_params, clamp_range, conv_multipliers, mul_params, pot_multipliers,
    requant_params, sub_params)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + 2**31, 2**32) - 2**31


def srdhm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SaturatingRoundingDoublingHighMul on int64 tensors holding int32 values."""
    overflow = (a == b) & (a == INT32_MIN)
    v = a * b
    v = v + torch.where(v >= 0, torch.full_like(v, 1 << 30), torch.full_like(v, 1 - (1 << 30)))
    high = torch.where(v >= 0, v >> 31, -((-v) >> 31))
    return torch.where(overflow, torch.full_like(high, INT32_MAX), _wrap32(high))


def rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    mask = torch.bitwise_left_shift(torch.ones_like(exponent), exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).to(torch.int64)
    return (x >> exponent) + (remainder > threshold).to(torch.int64)


def mbqm(x: torch.Tensor, multiplier, shift) -> torch.Tensor:
    """MultiplyByQuantizedMultiplier (double rounding) on int64 tensors; broadcasting."""
    multiplier = torch.as_tensor(multiplier, dtype=torch.int64)
    shift = torch.as_tensor(shift, dtype=torch.int64)
    left = torch.clamp(shift, min=0)
    right = torch.clamp(-shift, min=0)
    shifted = _wrap32(x * torch.bitwise_left_shift(torch.ones_like(left), left))
    return rounding_divide_by_pot(srdhm(shifted, multiplier), right)


def mbqm_single(x: torch.Tensor, multiplier, shift) -> torch.Tensor:
    """MultiplyByQuantizedMultiplier with one rounding, (x * m + 2**(t-1)) >> t, t = 31 - shift
    (graph/fixedpoint.py multiply_by_quantized_multiplier_single); broadcasting."""
    total = 31 - torch.as_tensor(shift, dtype=torch.int64)
    half = torch.bitwise_left_shift(torch.ones_like(total), total - 1)
    return torch.bitwise_right_shift(x * torch.as_tensor(multiplier, dtype=torch.int64) + half, total)


def clamp_codes(clamp, scale: float, zp: int, qmin: int, qmax: int) -> tuple[str, int, int]:
    """(activation name, act_min, act_max): the clamp's bounds on the output grid (graph/quant_params.py)."""
    lo, hi = clamp
    return (activation_name(lo, hi), *clamp_range(lo, hi, scale, zp, qmin, qmax))


def add_codes(qa: torch.Tensor, qb: torch.Tensor, za: int, zb: int, zo: int, p: dict,
              subtract: bool = False) -> torch.Tensor:
    """The int8 ADD kernel (SUB with `subtract` and sub_params: the rescaled b subtracted) before the
    clamp, on int64 code tensors."""
    x1 = (qa - za) * (1 << p["left_shift"])
    x2 = (qb - zb) * (1 << p["left_shift"])
    s1 = mbqm(x1, p["input1_multiplier"], p["input1_shift"])
    s2 = mbqm(x2, p["input2_multiplier"], p["input2_shift"])
    return mbqm(_wrap32(s1 - s2 if subtract else s1 + s2), p["output_multiplier"], p["output_shift"]) + zo


def mul_codes(qa: torch.Tensor, qb: torch.Tensor, za: int, zb: int, zo: int, p: dict) -> torch.Tensor:
    return mbqm((qa - za) * (qb - zb), p["output_multiplier"], p["output_shift"]) + zo
