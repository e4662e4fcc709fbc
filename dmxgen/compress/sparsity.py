"""Weight sparsity patterns: DENSE, TOPK{d}, BTOPK{n:m}, BLOCK{RxC,d}, and their masks.

Masks are computed on the weight matrix the integer kernels walk (rows =
output channels, columns = kernel positions with the input channel
innermost, i.e. the OHWI order of the exported weights), so that an N:M
pattern is N:M in the exported C too. Every pattern keeps an exact number of
weights: TOPK keeps round(d * size), BTOPK exactly n of every m, BLOCK
round(d * blocks) whole blocks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..graph.fixedpoint import round_half_away
from .formats import normalize

_TOPK = re.compile(r"^TOPK\{([0-9.eE+-]+)\}(?:\(U\))?$")
_BTOPK = re.compile(r"^BTOPK\{(\d+):(\d+)(?:,-1)?\}(?:\(U\))?$")
_BLOCK = re.compile(r"^BLOCK\{(\d+)X(\d+),([0-9.eE+-]+)\}$")


@dataclass(frozen=True)
class Sparseness:
    """kind: dense | topk | nm | block."""

    kind: str
    density: float = 1.0
    n: int = 0
    m: int = 0
    block: tuple[int, int] = (1, 1)

    def spelled(self) -> str:
        if self.kind == "topk":
            return f"TOPK{{{self.density:g}}}"
        if self.kind == "nm":
            return f"BTOPK{{{self.n}:{self.m}}}"
        if self.kind == "block":
            return f"BLOCK{{{self.block[0]}x{self.block[1]},{self.density:g}}}"
        return "DENSE"


DENSE = Sparseness("dense")


def parse_sparseness(text) -> Sparseness:
    """Parse a weight_sparseness string; raises ValueError without naming the layer."""
    s = normalize(text, "TOPK{0.1}")
    if s == "DENSE":
        return DENSE
    m = _TOPK.match(s)
    if m:
        d = _density(m.group(1), text)
        return Sparseness("topk", density=d)
    m = _BTOPK.match(s)
    if m:
        n, mm = int(m.group(1)), int(m.group(2))
        if not 0 < n <= mm:
            raise ValueError(f"{text!r}: BTOPK{{n:m}} needs 0 < n <= m")
        return Sparseness("nm", density=n / mm, n=n, m=mm)
    m = _BLOCK.match(s)
    if m:
        r, c = int(m.group(1)), int(m.group(2))
        if r < 1 or c < 1:
            raise ValueError(f"{text!r}: block sides must be at least 1")
        return Sparseness("block", density=_density(m.group(3), text), block=(r, c))
    raise ValueError(f"malformed sparseness {text!r}; expected DENSE, TOPK{{0.1}} (keep the largest 10%), "
                     "BTOPK{2:4} (keep 2 of every 4 along the input dim) or BLOCK{4x1,0.25}")


def _density(s: str, text: str) -> float:
    try:
        d = float(s)
    except ValueError:
        raise ValueError(f"{text!r}: {s!r} is not a number") from None
    if not 0.0 < d <= 1.0:
        raise ValueError(f"{text!r}: the kept fraction must be in (0, 1], got {d:g}")
    return d


def to_matrix(w: torch.Tensor) -> torch.Tensor:
    """Torch weight ([out, in] or [out, in, *k]) -> [out, prod(k) * in], input innermost."""
    if w.dim() == 2:
        return w
    return w.permute(0, *range(2, w.dim()), 1).reshape(w.shape[0], -1)


def from_matrix(m: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of to_matrix."""
    if len(shape) == 2:
        return m.reshape(shape)
    perm_shape = (shape[0], *shape[2:], shape[1])
    t = m.reshape(perm_shape)
    return t.permute(0, len(shape) - 1, *range(1, len(shape) - 1)).contiguous()


def compute_mask(w: torch.Tensor, sp: Sparseness) -> torch.Tensor:
    """A 0/1 float mask of w's shape keeping the largest weights by magnitude under `sp`.

    Raises ValueError when the pattern does not fit the tensor (the caller names the layer).
    """
    w = w.detach()
    if sp.kind == "dense":
        return torch.ones_like(w)
    mat = to_matrix(w).abs()
    if sp.kind == "topk":
        keep = round_half_away(sp.density * mat.numel())
        mask = _keep_largest(mat.reshape(-1), keep).reshape(mat.shape)
    elif sp.kind == "nm":
        inner = w.shape[1]
        if inner % sp.m:
            raise ValueError(f"BTOPK{{{sp.n}:{sp.m}}} needs the input dimension ({inner}) to be a multiple of {sp.m}")
        groups = mat.reshape(-1, sp.m)
        idx = torch.argsort(-groups, dim=1, stable=True)[:, :sp.n]
        mask = torch.zeros_like(groups).scatter_(1, idx, 1.0).reshape(mat.shape)
    elif sp.kind == "block":
        mask = _block_mask(mat, sp)
    else:  # pragma: no cover - parse_sparseness only makes the kinds above
        raise ValueError(f"unknown sparseness kind {sp.kind}")
    return from_matrix(mask, w.shape).to(w.dtype)


def _keep_largest(v: torch.Tensor, keep: int) -> torch.Tensor:
    """1 at the `keep` largest entries (ties: the earlier index wins), else 0."""
    order = torch.argsort(-v, stable=True)[:keep]
    return torch.zeros_like(v).index_fill_(0, order, 1.0)


def _block_mask(mat: torch.Tensor, sp: Sparseness) -> torch.Tensor:
    r, c = sp.block
    rows, cols = mat.shape
    pr, pc = -rows % r, -cols % c
    padded = torch.nn.functional.pad(mat, (0, pc, 0, pr))
    blocks = padded.reshape(padded.shape[0] // r, r, padded.shape[1] // c, c).sum(dim=(1, 3))
    keep = round_half_away(sp.density * blocks.numel())
    kept = _keep_largest(blocks.reshape(-1), keep).reshape(blocks.shape)
    full = kept.repeat_interleave(r, 0).repeat_interleave(c, 1)
    return full[:rows, :cols]
