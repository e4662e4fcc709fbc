"""EVBMF (dmxgen.compress.vbmf): the planted rank of noisy low-rank matrices, and the threshold's equation."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.compress.vbmf import evbmf, tau_threshold


def planted(rows: int, cols: int, rank: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols)) + noise * rng.standard_normal(
        (rows, cols))


@pytest.mark.parametrize("rows,cols,rank,noise", [
    (40, 60, 5, 0.1), (60, 40, 5, 0.1), (64, 128, 10, 0.05), (128, 64, 3, 0.2), (30, 30, 7, 0.1),
    (100, 300, 20, 0.5), (16, 144, 4, 0.05)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vbmf_recovers_the_planted_rank_and_the_noise(rows, cols, rank, noise, seed):
    res = evbmf(planted(rows, cols, rank, noise, seed))
    assert res.rank == rank
    assert res.noise_variance == pytest.approx(noise ** 2, rel=0.2)
    assert np.count_nonzero(res.singular_values) == rank


def test_pure_noise_has_rank_zero():
    for seed in range(5):
        assert evbmf(np.random.default_rng(seed).standard_normal((50, 80))).rank == 0


def test_the_rank_falls_as_the_noise_drowns_the_signal():
    ranks = [evbmf(planted(40, 60, 6, noise, 0)).rank for noise in (0.1, 1.0, 3.0, 30.0)]
    assert ranks[0] == 6 and ranks == sorted(ranks, reverse=True) and ranks[-1] < 6


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.1, 0.01])
def test_tau_threshold_solves_its_equation(alpha):
    """t_ is the zero of Phi(t) + Phi(t/alpha), Phi(z) = log(1+z)/z - 1/2; at it the EVB free energy of
    keeping a component equals that of dropping it (psi1(x_) = 0)."""
    t = tau_threshold(alpha)
    phi = lambda z: np.log1p(z) / z - 0.5  # noqa: E731
    assert abs(phi(t) + phi(t / alpha)) < 1e-9
    x = (1 + t) * (1 + alpha / t)
    d = x - (1 + alpha)
    tau = (d + np.sqrt(d * d - 4 * alpha)) / (2 * np.sqrt(alpha))
    sa = np.sqrt(alpha)
    assert abs(np.log(sa * tau + 1) + alpha * np.log(tau / sa + 1) - sa * tau) < 1e-9


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        evbmf(np.zeros(5))
