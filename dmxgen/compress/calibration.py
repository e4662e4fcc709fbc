"""How an activation quantizer turns what calibration saw into its range: MINMAX, MSE or PERCENTILE{p}.

MINMAX takes the smallest and largest value seen. MSE and PERCENTILE keep a
histogram of every calibration batch and clip the range: MSE to the range
whose quantization error (rounding inside, clipping outside) is least, as
torch.ao's HistogramObserver does; PERCENTILE{p} to the p-th percentile on each
side. Only the range changes, so the fake-quantized model and the export agree
to the bit whatever the method. Config key `activation_calibration`
(docs/compression.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .formats import normalize

BINS = 4096  # histogram bins, half each side of 0; a width doubling keeps 1024 to 2048 over the data


@dataclass(frozen=True)
class Calibration:
    """kind: minmax | mse | percentile (with `percentile` in (50, 100])."""

    kind: str
    percentile: float = 100.0

    def spelled(self) -> str:
        return f"PERCENTILE{{{self.percentile:g}}}" if self.kind == "percentile" else self.kind.upper()


MINMAX = Calibration("minmax")
MSE = Calibration("mse")
DEFAULT = MSE

_PERCENTILE = re.compile(r"^PERCENTILE\{([0-9.eE+-]+)\}$")


def parse_calibration(text) -> Calibration:
    """Parse an activation_calibration value; raises ValueError without naming the layer."""
    s = normalize(text, "MSE")
    if s in ("MINMAX", "MIN_MAX"):
        return MINMAX
    if s == "MSE":
        return MSE
    m = _PERCENTILE.match(s)
    if m:
        try:
            p = float(m.group(1))
        except ValueError:
            raise ValueError(f"{text!r}: {m.group(1)!r} is not a number") from None
        if not 50.0 < p <= 100.0:
            raise ValueError(f"{text!r}: the percentile must be in (50, 100], got {p:g}")
        return MINMAX if p == 100.0 else Calibration("percentile", p)
    raise ValueError(f"malformed activation calibration {text!r}; expected MINMAX, MSE or PERCENTILE{{99.99}}")


class RunningHistogram:
    """Counts of every value seen, on bins [k w, (k+1) w) anchored at 0 (k in [-BINS/2, BINS/2)).

    A batch reaching outside doubles w by merging neighbouring bins, which is
    exact because the bins are anchored at 0: the histogram of several batches
    does not depend on their order beyond that. Exact zeros (ReLU, padding) are
    counted apart: 0 is on every grid, so they cost no error.
    """

    def __init__(self, bins: int = BINS):
        self.half = bins // 2
        self.counts = np.zeros(2 * self.half, dtype=np.float64)
        self.width = 0.0
        self.zeros = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1).to("cpu", torch.float64)
        x = x[torch.isfinite(x)]
        nz = x[x != 0]
        self.zeros += int(x.numel() - nz.numel())
        if nz.numel() == 0:
            return
        amax = float(nz.abs().max())
        if self.width == 0.0:
            self.width = amax / self.half
        while amax > self.width * self.half:
            self._double()
        idx = (torch.floor(nz / self.width).to(torch.int64) + self.half).clamp_(0, 2 * self.half - 1)
        self.counts += torch.bincount(idx, minlength=2 * self.half).numpy()

    def _double(self) -> None:
        pairs = self.counts.reshape(-1, 2).sum(axis=1)
        self.counts = np.zeros_like(self.counts)
        q = self.half // 2
        self.counts[q:q + self.half] = pairs
        self.width *= 2.0

    def sides(self) -> tuple[np.ndarray, np.ndarray]:
        """(positive bins outward from 0, negative bins outward from 0): bin j spans |x| in [j w, (j+1) w)."""
        return self.counts[self.half:], self.counts[:self.half][::-1]


def choose_range(hist: RunningHistogram, lo: float, hi: float, method: Calibration,
                 levels: int) -> tuple[float, float]:
    """The clipped range [lo', hi'] within the observed [lo, hi] on a grid of `levels` codes."""
    if method.kind == "minmax" or hist.width == 0.0:
        return lo, hi
    pos, neg = hist.sides()
    if method.kind == "percentile":
        tail = (1.0 - method.percentile / 100.0) * (pos.sum() + neg.sum() + hist.zeros)
        b, a = _tail_edge(pos, tail), _tail_edge(neg, tail)
    else:
        a, b = _least_error(pos, neg, hist.width, levels)
    w = hist.width
    return max(lo, -a * w) if lo < 0 else lo, min(hi, b * w) if hi > 0 else hi


def _tail_edge(c: np.ndarray, tail: float) -> int:
    """The smallest bin edge k with at most `tail` counts beyond it."""
    beyond = np.concatenate([np.cumsum(c[::-1])[::-1], [0.0]])  # beyond[k] = counts in bins >= k
    return int(np.argmax(beyond <= tail))


class _Side:
    """Prefix sums of one side's bins for the error of clipping at edge k with step s (units of w)."""

    def __init__(self, c: np.ndarray):
        centre = np.arange(len(c)) + 0.5
        zero = np.zeros(1)
        self.n = len(c)
        self.p0 = np.concatenate([zero, np.cumsum(c)])
        self.p1 = np.concatenate([zero, np.cumsum(c * centre)])
        self.p2 = np.concatenate([zero, np.cumsum(c * centre ** 2)])

    def error(self, k: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Squared error (in w^2) of this side clipped at edge k with step s: bins beyond k clip to it,
        bins whose centre rounds to 0 cost centre^2, the others s^2 / 12."""
        t0, t1, t2 = self.p0[-1] - self.p0[k], self.p1[-1] - self.p1[k], self.p2[-1] - self.p2[k]
        clipped = t2 - 2 * k * t1 + k * k * t0
        m = np.clip(np.ceil(s / 2 - 0.5), 0, k).astype(np.int64)  # bins j < m have centre < s / 2
        rounded = self.p2[m] + (self.p0[k] - self.p0[m]) * s * s / 12.0
        return clipped + rounded


def _least_error(pos: np.ndarray, neg: np.ndarray, w: float, levels: int) -> tuple[int, int]:
    """(a, b): the range [-a w, b w] of least squared quantization error, by coordinate descent from
    the whole range (each step the best edge on one side for the other side's edge)."""
    sp, sn = _Side(pos), _Side(neg)
    nz = lambda c: int(np.nonzero(c)[0][-1]) + 1 if c.any() else 0  # noqa: E731
    a, b = nz(neg), nz(pos)
    steps = max(levels - 1, 1)
    ks_a, ks_b = np.arange(a + 1), np.arange(b + 1)
    for _ in range(20):
        e_b = sp.error(ks_b, (a + ks_b) / steps) + sn.error(np.full_like(ks_b, a), (a + ks_b) / steps)
        nb = int(np.argmin(e_b))
        e_a = sn.error(ks_a, (ks_a + nb) / steps) + sp.error(np.full_like(ks_a, nb), (ks_a + nb) / steps)
        na = int(np.argmin(e_a))
        if (na, nb) == (a, b):
            break
        a, b = na, nb
    if a + b == 0:  # everything rounds to 0 only when there is nothing: keep the whole range
        return nz(neg), nz(pos)
    # a cut inside the outermost occupied bin is below the histogram's resolution (its values may sit
    # at its far edge, as a constant tensor's do): keep the observed bound there
    return (nz(neg) if a >= nz(neg) - 1 else a), (nz(pos) if b >= nz(pos) - 1 else b)


def quantization_error(x: torch.Tensor, lo: float, hi: float, fmt) -> float:
    """Sum of squared errors of x fake-quantized on the activation grid of `fmt` over [lo, hi]."""
    from .quant import qparams_from_range, quantize_codes

    s, zp = qparams_from_range(lo, hi, fmt)
    codes = quantize_codes(x, torch.tensor(s, dtype=torch.float32), zp, fmt.qmin, fmt.qmax)
    return float(((codes - zp) * s - x).double().pow(2).sum())


def set_calibrations(root: dict, cfgs: dict) -> None:
    """Give every activation quantizer of the built layers its layer's `activation_calibration`
    (`root` maps a layer name, or `<input>_quant` for a graph input, to its module)."""
    from .quant import ActQuant

    for key, mod in root.items():
        name = key if key in cfgs else key[:-len("_quant")] if key.endswith("_quant") else None
        if name not in cfgs:
            continue
        for q in mod.modules():
            if isinstance(q, ActQuant) and not q.minmax_only:
                q.calibration = cfgs[name].calibration


def finish(quants: list, body) -> None:
    """End of calibration: each quantizer takes its method's range, then each `cat` (whose own method
    is not MINMAX) the union of its inputs' ranges. Under MINMAX that union is what the cat saw
    anyway; under clipping it keeps the widest input's grid, so that input is not rounded twice
    (once on its own grid, then onto a nearly equal one), as torch.ao shares a cat's observers."""
    from .layers import QuantCat

    for q in quants:
        q.finish_calibration()
    for mod in body.modules():  # graph order: an inner cat before the cat it feeds
        if not isinstance(mod, QuantCat) or mod.out_quant.calibration.kind == "minmax":
            continue
        ins = mod.in_quants
        if not ins or any(q is None or not q.calibrated or q.frozen is not None for q in ins):
            continue
        if mod.out_quant.frozen is None and mod.out_quant.calibrated:
            mod.out_quant.lo.fill_(min(float(q.lo) for q in ins))
            mod.out_quant.hi.fill_(max(float(q.hi) for q in ins))
