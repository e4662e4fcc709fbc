"""nn.MultiheadAttention rewritten, before tracing, as the layers the integer graph has.

torch runs MultiheadAttention as one opaque call (F.multi_head_attention_forward). For the
eval-mode case the integer ops cover (batch_first=True, no masks, need_weights=False, no
bias_k / bias_v, no zero attention) it is exactly:

    q, k, v = Linear_q(query), Linear_k(key), Linear_v(value)          # the in-projection, split in three
    q, k, v -> [N, heads, T, head_dim]                                  # view + transpose
    att = softmax(q @ k^T * head_dim ** -0.5, dim=-1)                   # batch_matmul, lut, softmax_gemmlowp
    out = out_proj((att @ v) -> [N, T, E])                              # batch_matmul, transpose, reshape, FC

`DecomposedAttention` computes that with nn.Linear layers copied from the module's weights, so
fx traces it into Linears, reshapes, transposes, matmuls and a softmax, each a supported layer.
`without_attention` returns a copy of the network with every MultiheadAttention so replaced
(the caller's network is left alone; the copy owns the parameters the Model then trains).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import DmxError


class DecomposedAttention(nn.Module):
    """An nn.MultiheadAttention (batch_first, eval) as q/k/v Linears, two matmuls, a softmax and out_proj."""

    def __init__(self, mha: nn.MultiheadAttention, name: str = ""):
        super().__init__()
        where = f"layer {name!r} (MultiheadAttention)"
        if not mha.batch_first:
            raise DmxError(f"{where}: only batch_first=True is supported")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise DmxError(f"{where}: add_bias_kv and add_zero_attn are not supported")
        self.name, self.heads, e = name, mha.num_heads, mha.embed_dim
        self.head_dim = e // mha.num_heads
        self.scale = float(self.head_dim) ** -0.5
        if mha._qkv_same_embed_dim:
            weights = mha.in_proj_weight.detach().chunk(3)
        else:
            weights = (mha.q_proj_weight.detach(), mha.k_proj_weight.detach(), mha.v_proj_weight.detach())
        biases = mha.in_proj_bias.detach().chunk(3) if mha.in_proj_bias is not None else (None,) * 3
        self.q, self.k, self.v = (_linear(w, b) for w, b in zip(weights, biases))
        self.out_proj = _linear(mha.out_proj.weight.detach(), None if mha.out_proj.bias is None
                                else mha.out_proj.bias.detach())

    def heads_first(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T, E] -> [N, heads, T, head_dim]."""
        n, t, _ = x.shape
        return x.view(n, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise DmxError(f"layer {self.name!r} (MultiheadAttention): masks are not supported")
        if need_weights:
            raise DmxError(f"layer {self.name!r} (MultiheadAttention): call it with need_weights=False "
                           "(the attention weights are not an output the integer graph has)")
        q, k, v = self.heads_first(self.q(query)), self.heads_first(self.k(key)), self.heads_first(self.v(value))
        att = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * self.scale, dim=-1)
        n, t, _ = query.shape
        out = torch.matmul(att, v).transpose(1, 2).reshape(n, t, self.heads * self.head_dim)
        return self.out_proj(out), None


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def without_attention(net: nn.Module) -> nn.Module:
    """`net` itself when it holds no nn.MultiheadAttention, else a copy with each one a DecomposedAttention."""
    names = [name for name, m in net.named_modules() if isinstance(m, nn.MultiheadAttention)]
    if not names:
        return net
    if isinstance(net, nn.MultiheadAttention):
        return DecomposedAttention(net, type(net).__name__)
    net = copy.deepcopy(net)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, DecomposedAttention(getattr(parent, child), name))
    return net
