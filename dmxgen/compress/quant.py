"""Fake quantization that rounds exactly as the integer graph does.

TFLite's kernels round half away from zero (std::round), while torch.round
rounds half to even; every rounding here is half away from zero so that the
fake-quantized model and the exported integers agree on ties. Gradients are
straight-through (identity inside the clamp range).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..graph import fixedpoint as fp
from .calibration import DEFAULT as DEFAULT_CALIBRATION
from .calibration import MINMAX, Calibration, RunningHistogram, choose_range
from .formats import NumFormat


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """std::round on tensors: ties away from zero.

    The torch twin of graph/fixedpoint.py's round_half_away_array, the one
    definition: it runs on tensors in autograd, and tests/torch/test_quant.py
    holds the two equal on ties and random values. The fraction is taken
    exactly (x - trunc(x)): floor(|x| + 0.5) would round 0.49999997 up in float32.
    """
    whole = torch.trunc(x)
    return torch.where((x - whole).abs() >= 0.5, whole + torch.sign(x), whole)


def ste(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """`value` forward, identity gradient to `x` backward."""
    return x + (value - x).detach()


def qparams_from_range(lo: float, hi: float, fmt: NumFormat) -> tuple[float, int]:
    """(scale, zero point) for an asymmetric grid over [lo, hi], TFLite's nudging.

    The range is widened to include 0 so that 0 (padding, ReLU) is exact; the
    scale is rounded to float32, as a .tflite stores it.
    """
    qmin, qmax = fmt.qmin, fmt.qmax
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0.0:
        return 1.0, 0
    scale = float(np.float32((hi - lo) / (qmax - qmin)))
    zp_real = qmin - lo / scale
    zp = int(min(max(fp.round_half_away(zp_real), qmin), qmax))
    return scale, zp


def quantize_codes(x: torch.Tensor, scale, zero_point, qmin: int, qmax: int) -> torch.Tensor:
    """Integer codes (as float tensor) of x on the grid: clamp(round(x / scale) + zp)."""
    return torch.clamp(round_half_away(x / scale) + zero_point, qmin, qmax)


class ActQuant(nn.Module):
    """A per-tensor activation quantizer with a calibration observer.

    While calibrating it records the running min/max (and, for MSE or
    PERCENTILE calibration, a histogram) and passes values through;
    `finish_calibration` then sets the range its `calibration` method chooses
    (compress/calibration.py). Once a range is recorded it fake-quantizes. Its
    scale and zero point are the exported tensor's QuantParams.
    """

    minmax_only = False  # a subclass whose range must hold every value (an LSTM cell state)

    def __init__(self, fmt: NumFormat, label: str = "", calibration: Calibration = DEFAULT_CALIBRATION):
        super().__init__()
        self.fmt = fmt
        self.label = label
        self.calibrating = False
        self.frozen: tuple[float, int] | None = None
        self.calibration = MINMAX if self.minmax_only else calibration
        self._hist: RunningHistogram | None = None
        self.register_buffer("lo", torch.tensor(float("inf")))
        self.register_buffer("hi", torch.tensor(float("-inf")))

    def extra_repr(self) -> str:
        how = getattr(self, "calibration", MINMAX).spelled()
        if self.calibrated:
            s, zp = self.qparams()
            return f"{self.fmt.spelled()}, {how}, scale={s:.6g}, zero_point={zp}"
        return f"{self.fmt.spelled()}, {how}, not calibrated"

    def freeze(self) -> None:
        """Fix the scale and zero point as Python numbers (for torch.export); needs a range."""
        self.frozen = self.qparams()

    @property
    def calibrated(self) -> bool:
        if self.frozen is not None:
            return True
        return bool(torch.isfinite(self.lo)) and bool(torch.isfinite(self.hi))

    def reset(self) -> None:
        self.frozen = None
        self._hist = None
        self.lo.fill_(float("inf"))
        self.hi.fill_(float("-inf"))

    def qparams(self) -> tuple[float, int]:
        if self.frozen is not None:
            return self.frozen
        return qparams_from_range(float(self.lo), float(self.hi), self.fmt)

    def observe(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            self.lo.fill_(min(float(self.lo), float(x.min())))
            self.hi.fill_(max(float(self.hi), float(x.max())))
            if getattr(self, "calibration", MINMAX).kind != "minmax":
                if getattr(self, "_hist", None) is None:
                    self._hist = RunningHistogram()
                self._hist.add(x)

    def finish_calibration(self) -> None:
        """Replace the observed min/max by the range the calibration method chooses; drops the histogram."""
        hist, self._hist = getattr(self, "_hist", None), None
        if hist is None or not self.calibrated or self.frozen is not None:
            return
        lo, hi = choose_range(hist, float(self.lo), float(self.hi), self.calibration,
                              self.fmt.qmax - self.fmt.qmin + 1)
        self.lo.fill_(lo)
        self.hi.fill_(hi)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        s, zp = self.qparams()
        return quantize_codes(x, torch.tensor(s, dtype=torch.float32), zp, self.fmt.qmin, self.fmt.qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.observe(x)
            return x
        if not self.calibrated:
            return x
        return self.attach(x, self.dequantize(self.codes(x)))

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        s, zp = self.qparams()
        return (codes.to(torch.float32) - zp) * torch.tensor(s, dtype=torch.float32)

    def attach(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """`value` forward; x's gradient backward where x is inside this grid's range (clipped STE)."""
        s, zp = self.qparams()
        lo, hi = (self.fmt.qmin - zp) * s, (self.fmt.qmax - zp) * s
        inside = ((x >= lo) & (x <= hi)).to(x.dtype)
        return value.detach().to(x.dtype) + (x - x.detach()) * inside


def weight_scales(w: torch.Tensor, fmt: NumFormat) -> torch.Tensor:
    """Symmetric scales: per output channel (dim 0) or one for the tensor, float32.

    An all-zero channel (fully pruned) borrows the tensor's scale, so that its
    bias is not quantized on a needlessly coarse grid.
    """
    a = w.detach().abs()
    tensor_max = a.max()
    if fmt.granularity == "PER_CHANNEL":
        m = a.reshape(a.shape[0], -1).max(dim=1).values
        m = torch.where(m > 0, m, tensor_max)
    else:
        m = tensor_max.reshape(1)
    m = torch.where(m > 0, m, torch.ones_like(m))
    return (m / fmt.qmax).to(torch.float32)


def fake_quant_weight(w: torch.Tensor, fmt: NumFormat,
                      scales: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dequantized weight with STE gradient, integer codes, scales per channel or [1]); `scales`
    replaces the symmetric ones (power-of-two requantization moves them)."""
    scales = weight_scales(w, fmt) if scales is None else scales
    view = scales.reshape(-1, *([1] * (w.dim() - 1))) if scales.numel() > 1 else scales
    q = torch.clamp(round_half_away(w / view), -fmt.qmax, fmt.qmax)
    return ste(w, q * view), q.detach(), scales


def quantize_bias(b: torch.Tensor, in_scale: float, w_scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dequantized bias with STE gradient, int32 codes) on the grid in_scale * w_scale."""
    step = (torch.tensor(in_scale, dtype=torch.float64) * w_scales.detach().to(torch.float64))
    q = torch.clamp(round_half_away(b.detach().to(torch.float64) / step), -(2**31), 2**31 - 1)
    return ste(b, (q * step).to(b.dtype)), q
