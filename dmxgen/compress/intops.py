"""The integer requantization of the exported ops, in torch, for the fake-quantized forward.

TFLite's MultiplyByQuantizedMultiplier rounds twice (a rounding doubling
high multiply, then a rounding right shift), which differs from one float
rounding whenever the first rounding lands on a half: with a right shift of
3 bits that is one value in sixteen. The layers therefore compute their
forward values with these integer routines (the same arithmetic as
graph/fixedpoint.py, which tests hold equal) and keep float values only for
the gradient. The constants come from here for both the layers and the
exporter, so the two cannot drift apart.
"""
from __future__ import annotations

import numpy as np
import torch

from ..graph.fixedpoint import quantize_multiplier, quantize_multiplier_array, round_half_away

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ADD_LEFT_SHIFT = 20


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


def conv_multipliers(s_in: float, w_scales, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift): real = s_in * s_w / s_out from float32 scales, in double."""
    reals = [float(np.float32(s_in)) * float(np.float32(s)) / float(np.float32(s_out)) for s in np.ravel(w_scales)]
    return quantize_multiplier_array(np.array(reals, dtype=np.float64))


def add_params(sa: float, sb: float, so: float) -> dict:
    """TFLite's int8 ADD constants (left shift 20, each input rescaled to twice the larger scale)."""
    sa, sb, so = (float(np.float32(v)) for v in (sa, sb, so))
    twice_max = 2 * max(sa, sb)
    m1, s1 = quantize_multiplier(sa / twice_max)
    m2, s2 = quantize_multiplier(sb / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * so))
    return {"left_shift": ADD_LEFT_SHIFT, "input1_multiplier": m1, "input1_shift": s1,
            "input2_multiplier": m2, "input2_shift": s2, "output_multiplier": mo, "output_shift": sho}


def mul_params(sa: float, sb: float, so: float) -> dict:
    sa, sb, so = (float(np.float32(v)) for v in (sa, sb, so))
    mo, sho = quantize_multiplier(sa * sb / so)
    return {"output_multiplier": mo, "output_shift": sho}


def requant_params(s_in: float, s_out: float) -> tuple[int, int]:
    return quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)))


def clamp_codes(clamp, scale: float, zp: int, qmin: int, qmax: int) -> tuple[str, int, int]:
    """(activation name, act_min, act_max): the clamp's bounds on the output grid.

    As TFLite's CalculateActivationRangeQuantized: f / scale in float32, rounded half away.
    """
    def q(f: float) -> int:
        return zp + round_half_away(float(np.float32(f) / np.float32(scale)))

    lo, hi = clamp
    amin = qmin if lo is None else max(qmin, q(lo))
    amax = qmax if hi is None else min(qmax, q(hi))
    name = {(None, None): "NONE", (0.0, None): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}.get(
        tuple(clamp), "CLAMP")
    return name, amin, amax


def add_codes(qa: torch.Tensor, qb: torch.Tensor, za: int, zb: int, zo: int, p: dict) -> torch.Tensor:
    """The int8 ADD kernel before the clamp, on int64 code tensors."""
    x1 = (qa - za) * (1 << p["left_shift"])
    x2 = (qb - zb) * (1 << p["left_shift"])
    s1 = mbqm(x1, p["input1_multiplier"], p["input1_shift"])
    s2 = mbqm(x2, p["input2_multiplier"], p["input2_shift"])
    return mbqm(_wrap32(s1 + s2), p["output_multiplier"], p["output_shift"]) + zo


def mul_codes(qa: torch.Tensor, qb: torch.Tensor, za: int, zb: int, zo: int, p: dict) -> torch.Tensor:
    return mbqm((qa - za) * (qb - zb), p["output_multiplier"], p["output_shift"]) + zo
