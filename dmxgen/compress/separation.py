"""Layer separation: a large Linear or Conv2d replaced by a chain of smaller ones.

- Linear(in -> out) becomes Linear(in -> r, no bias) -> Linear(r -> out): the
  truncated SVD W ~ (U_r S_r) V_r^T.
- Conv2d(in -> out, k x k) becomes Conv2d 1x1 (in -> r_in, no bias) ->
  Conv2d k x k (r_in -> r_out, the original stride/padding/dilation, no bias)
  -> Conv2d 1x1 (r_out -> out, the original bias): the Tucker-2 decomposition
  of the kernel along its output and input channels (truncated HOSVD).

Ranks come from VBMF (vbmf.evbmf) or from a retained-energy fraction. Both
are exact at full rank. The replacement is an nn.Sequential set on the
layer's parent module, so it works in any module tree (not only in
nn.Sequential containers) and the tracer sees two or three ordinary layers;
a BatchNorm that followed the conv folds into the last 1x1 conv.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .vbmf import evbmf


class SeparatedLinear(nn.Sequential):
    """Linear(in -> r, no bias) then Linear(r -> out)."""


class SeparatedConv2d(nn.Sequential):
    """Conv2d 1x1 (in -> r_in), Conv2d k x k (r_in -> r_out), Conv2d 1x1 (r_out -> out)."""


def choose_rank(matrix: np.ndarray, rank="vbmf") -> int:
    """The rank to keep: an int as is, a float in (0, 1] as the retained energy
    (fraction of the sum of squared singular values), or "vbmf". At least 1."""
    full = min(matrix.shape)
    if isinstance(rank, str):
        if rank != "vbmf":
            raise ValueError(f"rank must be 'vbmf', an energy fraction in (0, 1] or an int, got {rank!r}")
        return max(1, min(full, evbmf(matrix).rank))
    if isinstance(rank, float):
        if not 0.0 < rank <= 1.0:
            raise ValueError(f"an energy fraction must be in (0, 1], got {rank}")
        s2 = np.linalg.svd(matrix, compute_uv=False) ** 2
        energy = np.cumsum(s2) / max(float(s2.sum()), 1e-300)
        return max(1, min(full, int(np.searchsorted(energy, rank - 1e-12) + 1)))
    return max(1, min(full, int(rank)))


def separate_linear(layer: nn.Linear, rank="vbmf") -> SeparatedLinear:
    """Truncated SVD of layer.weight; rank as in choose_rank."""
    w = layer.weight.detach().to(torch.float64)
    r = choose_rank(w.cpu().numpy(), rank)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    first = nn.Linear(layer.in_features, r, bias=False)
    second = nn.Linear(r, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_(vh[:r])
        second.weight.copy_(u[:, :r] * s[:r])
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return SeparatedLinear(first, second).to(layer.weight.device, layer.weight.dtype)


def tucker2_ranks(weight: torch.Tensor, rank="vbmf") -> tuple[int, int]:
    """(r_out, r_in) of a conv kernel [out, in, kh, kw] from its two channel unfoldings."""
    w = weight.detach().to(torch.float64).cpu().numpy()
    out_c, in_c = w.shape[:2]
    mode0 = w.reshape(out_c, -1)
    mode1 = np.moveaxis(w, 1, 0).reshape(in_c, -1)
    if isinstance(rank, tuple):
        return choose_rank(mode0, rank[0]), choose_rank(mode1, rank[1])
    return choose_rank(mode0, rank), choose_rank(mode1, rank)


def separate_conv2d(layer: nn.Conv2d, rank="vbmf") -> SeparatedConv2d:
    """Tucker-2 (truncated HOSVD) of a Conv2d; rank as in choose_rank, or a (r_out, r_in) pair."""
    if layer.groups != 1:
        raise ValueError(f"Tucker-2 separation needs groups=1, the layer has groups={layer.groups}")
    if layer.padding_mode != "zeros":
        raise ValueError(f"Tucker-2 separation needs zero padding, the layer pads with {layer.padding_mode!r}")
    w = layer.weight.detach().to(torch.float64)
    out_c, in_c = w.shape[:2]
    r_out, r_in = tucker2_ranks(w, rank)
    u_out = torch.linalg.svd(w.reshape(out_c, -1), full_matrices=False)[0][:, :r_out]  # [out, r_out]
    u_in = torch.linalg.svd(w.permute(1, 0, 2, 3).reshape(in_c, -1), full_matrices=False)[0][:, :r_in]
    core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)  # [r_out, r_in, kh, kw]
    first = nn.Conv2d(in_c, r_in, 1, bias=False)
    middle = nn.Conv2d(r_in, r_out, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                       dilation=layer.dilation, bias=False)
    last = nn.Conv2d(r_out, out_c, 1, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_(u_in.T.reshape(r_in, in_c, 1, 1))
        middle.weight.copy_(core)
        last.weight.copy_(u_out.reshape(out_c, r_out, 1, 1))
        if layer.bias is not None:
            last.bias.copy_(layer.bias)
    return SeparatedConv2d(first, middle, last).to(layer.weight.device, layer.weight.dtype)


def separable(layer: nn.Module) -> bool:
    """Layers this module knows how to separate."""
    if isinstance(layer, (SeparatedLinear, SeparatedConv2d)):
        return False
    if isinstance(layer, nn.Linear):
        return True
    return isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros"


def separate(layer: nn.Module, rank="vbmf") -> nn.Module:
    """The separated replacement of a Linear or Conv2d."""
    if isinstance(layer, nn.Linear):
        return separate_linear(layer, rank)
    if isinstance(layer, nn.Conv2d):
        return separate_conv2d(layer, rank)
    raise ValueError(f"cannot separate a {type(layer).__name__}; only Linear and Conv2d")


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Set root's submodule `name` (a qualified name such as "features.3.conv") to `new`."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def separate_in_place(root: nn.Module, name: str, rank="vbmf") -> nn.Module | None:
    """Replace root's layer `name` by its separation when that has fewer parameters;
    returns the replacement, or None when separating would not shrink the layer."""
    layer = root.get_submodule(name)
    new = separate(layer, rank)
    if parameter_count(new) >= parameter_count(layer):
        return None
    replace_module(root, name, new)
    return new
