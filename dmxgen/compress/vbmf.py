"""Rank selection by empirical variational Bayesian matrix factorization (EVBMF).

Implemented from the analytic global solution of Nakajima, Sugiyama, Babacan
and Tomioka ("Global analytic solution of fully-observed variational Bayesian
matrix factorization", JMLR 14, 2013) with the noise variance estimated as in
Nakajima et al., "Perfect dimensionality recovery by variational Bayesian PCA"
(NIPS 2012). For V = B A^T + E (L x M, L <= M, Gaussian noise of unknown
variance s2) the EVB estimate keeps the singular values gamma_h with

    gamma_h^2 > M * s2 * x_, x_ = (1 + t_)(1 + a / t_), a = L / M,

where t_ is the zero of Phi(t) + Phi(t / a), Phi(z) = log(1 + z) / z - 1/2,
and s2 minimizes sum_h psi(gamma_h^2 / (M s2)) with
psi(x) = x - log x + [x > x_] psi1(x),
psi1(x) = log(sqrt(a) tau(x) + 1) + a log(tau(x) / sqrt(a) + 1) - sqrt(a) tau(x),
tau(x) = (x - (1 + a) + sqrt((x - (1 + a))^2 - 4a)) / (2 sqrt(a)).

No free parameter: the rank is what the data support above the noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VBMFResult:
    rank: int
    noise_variance: float
    threshold: float  # singular values above this are kept
    singular_values: np.ndarray  # the EVB-shrunk singular values (zero beyond `rank`)


def _phi(z: float) -> float:
    return np.log1p(z) / z - 0.5


def tau_threshold(alpha: float) -> float:
    """t_ for the aspect ratio alpha = L / M in (0, 1]: the zero of Phi(t) + Phi(t / alpha).

    The function decreases in t from +1/2 + ... to -1, so bisection finds the one zero.
    """
    lo, hi = 1e-12, 1.0
    while _phi(hi) + _phi(hi / alpha) > 0:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _phi(mid) + _phi(mid / alpha) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _objective(sigma2: float, g2: np.ndarray, m: int, alpha: float, x_bar: float) -> float:
    x = g2 / (m * sigma2)
    value = float(np.sum(x - np.log(x)))
    big = x[x > x_bar]
    if big.size:
        d = big - (1.0 + alpha)
        tau = (d + np.sqrt(np.maximum(d * d - 4.0 * alpha, 0.0))) / (2.0 * np.sqrt(alpha))
        sa = np.sqrt(alpha)
        value += float(np.sum(np.log(sa * tau + 1.0) + alpha * np.log(tau / sa + 1.0) - sa * tau))
    return value


def evbmf(matrix: np.ndarray, grid: int = 400) -> VBMFResult:
    """The EVBMF rank and noise variance of a 2-D matrix (either orientation)."""
    v = np.asarray(matrix, dtype=np.float64)
    if v.ndim != 2 or 0 in v.shape:
        raise ValueError(f"evbmf needs a non-empty 2-D matrix, got shape {v.shape}")
    if v.shape[0] > v.shape[1]:
        v = v.T
    L, M = v.shape
    gamma = np.linalg.svd(v, compute_uv=False)
    g2 = gamma ** 2
    alpha = L / M
    t_bar = tau_threshold(alpha)
    x_bar = (1.0 + t_bar) * (1.0 + alpha / t_bar)
    upper = float(np.sum(g2)) / (L * M)  # all of V is noise
    if upper <= 0.0:
        return VBMFResult(0, 0.0, 0.0, np.zeros_like(gamma))
    h_max = max(0, min(int(np.ceil(L / (1.0 + alpha))) - 1, L))  # the largest rank EVB can report
    lower = max(float(np.sum(g2[h_max:])) / (L * M), upper * 1e-12)
    lower = min(lower, upper)
    sigma2 = _minimize_log(lambda s: _objective(s, np.maximum(g2, 1e-300), M, alpha, x_bar), lower, upper, grid)
    threshold = float(np.sqrt(M * sigma2 * x_bar))
    rank = int(np.sum(gamma > threshold))
    shrunk = np.zeros_like(gamma)
    if rank:
        g = gamma[:rank]
        c = 1.0 - (L + M) * sigma2 / g ** 2
        shrunk[:rank] = 0.5 * g * (c + np.sqrt(np.maximum(c * c - 4.0 * L * M * sigma2 ** 2 / g ** 4, 0.0)))
    return VBMFResult(rank, sigma2, threshold, shrunk)


def _minimize_log(f, lo: float, hi: float, grid: int) -> float:
    """Minimize f over [lo, hi] on a log grid, then refine around the best point by golden section."""
    if hi <= lo:
        return hi
    xs = np.geomspace(lo, hi, grid)
    vals = [f(x) for x in xs]
    i = int(np.argmin(vals))
    a, b = np.log(xs[max(i - 1, 0)]), np.log(xs[min(i + 1, grid - 1)])
    r = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(np.exp(c)), f(np.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(np.exp(d))
    best = float(np.exp(0.5 * (a + b)))
    return best if f(best) <= vals[i] else float(xs[i])
