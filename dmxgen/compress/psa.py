"""Learnable 1-D activations of PSA-Compress (Singh & Bazargan, TRETS 2024): PSA, LERP-PSA, splines.

Each feature (channel) has its own function. PSA mixes E lines through the origin with a
softmax over Gaussian-like logits,

    f(x) = o_w * sum_k softmax_k(-(x - q_b[k])^2 / (q_w[k]^2 + eps)) * x * v[k] + o_b,   eps = 1,

and ResPSA adds the identity. LERP-PSA evaluates f on a grid of G points over [-R, R] at every
step and runs forward by linear interpolation between them (linear extrapolation outside):
what an integer table of G points computes (ops/lut_interp.py), so training sees the
function it will be lowered to. `LinearSpline` is the DeepSpline-style baseline: the grid
values are the parameters themselves, with a TV2 penalty on slope changes.
"""
from __future__ import annotations

import torch
from torch import nn

EPS = 1.0


class PSA(nn.Module):
    """f(x) per feature along `dim` (1 for [N, C, ...] tensors, -1 for [N, T, D] tokens)."""

    def __init__(self, features: int, kernels: int = 8, dim: int = 1, span: float = 4.0, residual: bool = False):
        super().__init__()
        self.features, self.kernels, self.dim, self.span, self.residual = features, kernels, dim, span, residual
        centres = torch.linspace(-span, span, kernels).repeat(features, 1)
        self.q_b = nn.Parameter(centres)  # [features, E]: the centres
        self.q_w = nn.Parameter(torch.full((features, kernels), 2 * span / max(kernels - 1, 1)))  # widths
        self.v = nn.Parameter(torch.ones(features, kernels))  # the slope of each line
        self.o_w = nn.Parameter(torch.ones(features))
        self.o_b = nn.Parameter(torch.zeros(features))

    def curve(self, x: torch.Tensor) -> torch.Tensor:
        """f on x of shape [features, points] (one row per feature)."""
        logits = -(x[..., None] - self.q_b[:, None, :]) ** 2 / (self.q_w[:, None, :] ** 2 + EPS)
        gate = torch.softmax(logits, dim=-1)  # [features, points, E]
        y = (gate * self.v[:, None, :]).sum(-1) * x
        y = self.o_w[:, None] * y + self.o_b[:, None]
        return y + x if self.residual else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(self.dim, -1)
        flat = moved.reshape(-1, self.features).t()  # [features, elements]
        return self.curve(flat).t().reshape(moved.shape).movedim(-1, self.dim)

    @torch.no_grad()
    def fit(self, fn, points: int = 257) -> PSA:
        """Start close to `fn` (the activation being replaced): least-squares slopes v and
        offset o_b on a grid over [-span, span], the same for every feature."""
        x = torch.linspace(-self.span, self.span, points, dtype=torch.float64)
        logits = -(x[:, None] - self.q_b[0].double()) ** 2 / (self.q_w[0].double() ** 2 + EPS)
        basis = torch.softmax(logits, dim=-1) * x[:, None]  # f = basis @ v + o_b
        a = torch.cat([basis, torch.ones(points, 1, dtype=torch.float64)], dim=1)
        target = fn(x) - (x if self.residual else 0)
        sol = torch.linalg.lstsq(a, target[:, None]).solution[:, 0]
        self.v.copy_(sol[:-1].float().repeat(self.features, 1))
        self.o_w.fill_(1.0)
        self.o_b.fill_(float(sol[-1]))
        return self


class _Lerp(torch.autograd.Function):
    """y = linear interpolation of grid [features, G] over [-span, span] at x [features, n]."""

    @staticmethod
    def forward(ctx, x, grid, span: float):
        points = grid.shape[1]
        pos = (x + span) * ((points - 1) / (2 * span))
        i = pos.floor().clamp(0, points - 2).long()
        t = pos - i  # below 0 or above 1 outside [-span, span]: linear extrapolation
        y0, y1 = grid.gather(1, i), grid.gather(1, i + 1)
        ctx.save_for_backward(i, t, y0, y1)
        ctx.points, ctx.span = points, span
        return y0 + t * (y1 - y0)

    @staticmethod
    def backward(ctx, g):
        i, t, y0, y1 = ctx.saved_tensors
        dx = g * (y1 - y0) * ((ctx.points - 1) / (2 * ctx.span))  # the local slope
        dgrid = torch.zeros(g.shape[0], ctx.points, dtype=g.dtype, device=g.device)
        dgrid.scatter_add_(1, i, g * (1 - t))  # split between the two neighbours
        dgrid.scatter_add_(1, i + 1, g * t)
        return dx, dgrid, None


def lerp(x: torch.Tensor, grid: torch.Tensor, span: float) -> torch.Tensor:
    """Interpolate `grid` ([features, G] over [-span, span]) at x ([features, n]), with the custom backward."""
    return _Lerp.apply(x, grid, span)


class LerpPSA(nn.Module):
    """PSA evaluated on G grid points over [-R, R], forward by interpolation between them.

    The grid is recomputed from the PSA parameters at every call, so their gradients are
    PSA's own analytic ones at the grid points, chained through the interpolation weights.
    """

    def __init__(self, features: int, points: int = 64, span: float = 4.0, kernels: int = 8, dim: int = 1,
                 residual: bool = False):
        super().__init__()
        self.psa = PSA(features, kernels, dim, span, residual)
        self.points, self.span, self.dim, self.features = points, span, dim, features

    def grid_x(self) -> torch.Tensor:
        return torch.linspace(-self.span, self.span, self.points, device=self.psa.v.device).repeat(self.features, 1)

    def grid(self) -> torch.Tensor:
        """[features, G]: f at the grid points."""
        return self.psa.curve(self.grid_x())

    def fit(self, fn) -> LerpPSA:
        self.psa.fit(fn)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(self.dim, -1)
        flat = moved.reshape(-1, self.features).t()
        return lerp(flat, self.grid(), self.span).t().reshape(moved.shape).movedim(-1, self.dim)


class LinearSpline(nn.Module):
    """DeepSpline-style baseline: a linear B-spline per feature whose knot values are the
    parameters (odd count, uniform over [-R, R], linear extrapolation), regularised by
    `tv2()`, the total variation of the slope changes."""

    def __init__(self, features: int, knots: int = 21, span: float = 4.0, dim: int = 1):
        super().__init__()
        if knots < 3 or knots % 2 == 0:
            raise ValueError(f"a linear spline needs an odd number of knots >= 3, got {knots}")
        self.features, self.knots, self.span, self.dim = features, knots, span, dim
        x = torch.linspace(-span, span, knots)
        self.coefficients = nn.Parameter(torch.relu(x).repeat(features, 1))

    def fit(self, fn) -> LinearSpline:
        with torch.no_grad():
            self.coefficients.copy_(fn(torch.linspace(-self.span, self.span, self.knots)).repeat(self.features, 1))
        return self

    def tv2(self) -> torch.Tensor:
        """sum |c[k+1] - 2 c[k] + c[k-1]| over features: the slope changes, scaled by the knot spacing."""
        c = self.coefficients
        step = 2 * self.span / (self.knots - 1)
        return (c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2]).abs().sum() / step

    def grid(self) -> torch.Tensor:
        return self.coefficients

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(self.dim, -1)
        flat = moved.reshape(-1, self.features).t()
        return lerp(flat, self.coefficients, self.span).t().reshape(moved.shape).movedim(-1, self.dim)


class LazyLearnable(nn.Module):
    """A learnable activation whose feature count comes from its first input (the config's
    `approximation_function: LERP_PSA{64,4}` swaps a module for one): features on dim 1 of a
    4-D (NCHW) input, on the last dim otherwise. Started close to the module it replaces, so
    fine-tuning starts from the current accuracy; its parameters exist after the first call
    (a calibration pass), so build the optimizer after it."""

    def __init__(self, name: str, params: tuple, replaced: nn.Module):
        super().__init__()
        self.spec, self.params_given, self.replaced = name, tuple(params), replaced
        self.inner: nn.Module | None = None

    def build(self, x: torch.Tensor) -> None:
        dim = 1 if x.dim() == 4 else -1
        features = x.shape[dim]
        if self.spec == "PSA":
            inner = PSA(features, kernels=self.params_given[0], dim=dim)
        elif self.spec == "LERP_PSA":
            inner = LerpPSA(features, points=self.params_given[0], span=self.params_given[1], dim=dim)
        else:
            inner = LinearSpline(features, knots=self.params_given[0], span=self.params_given[1], dim=dim)
        self.inner = inner.fit(self.replaced).to(x.device)

    @property
    def built(self) -> nn.Module:
        if self.inner is None:
            raise RuntimeError(f"{self.spec} has not seen an input yet: run a calibration pass first")
        return self.inner

    @property
    def features(self) -> int:
        return self.built.features

    @property
    def dim(self) -> int:
        return self.built.dim

    @property
    def points(self) -> int:
        """The integer table's G: LERP_PSA's own grid; PSA and SPLINE take the table's default."""
        return int(self.params_given[0]) if self.spec == "LERP_PSA" else 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inner is None:
            self.build(x)
        return self.inner(x)

    def extra_repr(self) -> str:
        return f"{self.spec}{{{','.join(f'{p:g}' for p in self.params_given)}}}"
