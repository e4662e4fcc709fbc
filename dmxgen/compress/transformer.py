"""nn.TransformerEncoderLayer / nn.TransformerEncoder rewritten, before tracing, as plain layers.

In eval torch runs an encoder layer as one opaque call (torch._transformer_encoder_layer_fwd,
its fast path) that torch.fx cannot trace, and TransformerEncoder's forward branches on masks
and nested tensors. Without masks both are exactly (Fig. 1 of Xiong et al., 2020):

    norm_first=False:  x = norm1(x + self_attn(x));   x = norm2(x + ff(x))
    norm_first=True:   x = x + self_attn(norm1(x));   x = x + ff(norm2(x))
    ff(x) = linear2(dropout(activation(linear1(x))))     encoder: each layer in turn, then `norm`

`DecomposedEncoderLayer` computes that with the layer's own submodules (self_attn as a
`DecomposedAttention`, compress/attention.py), so fx traces it into Linears, LayerNorms, adds,
matmuls, a softmax and an activation, and the parameter names stay the module's
(`layers.0.linear1`, `layers.0.self_attn.out_proj`, `layers.1.norm2`). `without_transformers`
returns a copy of the network with every encoder (layer) so replaced; the caller's network is
left alone and the copy owns the parameters the Model then trains.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DmxError
from .attention import DecomposedAttention

_ACTIVATIONS = {F.relu: nn.ReLU, F.gelu: nn.GELU}  # the callables torch's own string names resolve to


def _refuse_masks(where: str, mask, key_padding_mask, is_causal) -> None:
    if mask is not None or key_padding_mask is not None or is_causal:
        raise DmxError(f"{where}: masks are not supported (src_mask / mask, src_key_padding_mask, is_causal): "
                       "the integer graph has no masked softmax; call it with the sequence only")


class DecomposedEncoderLayer(nn.Module):
    """An nn.TransformerEncoderLayer (batch_first, eval, no masks) in its plain submodules."""

    def __init__(self, layer: nn.TransformerEncoderLayer, name: str = ""):
        super().__init__()
        self.where = f"layer {name or type(layer).__name__!r} (TransformerEncoderLayer)"
        if not layer.self_attn.batch_first:
            raise DmxError(f"{self.where}: only batch_first=True is supported")
        self.norm_first = layer.norm_first
        self.self_attn = DecomposedAttention(layer.self_attn, f"{name}.self_attn" if name else "self_attn")
        self.linear1, self.dropout, self.linear2 = layer.linear1, layer.dropout, layer.linear2
        self.norm1, self.norm2 = layer.norm1, layer.norm2
        self.dropout1, self.dropout2 = layer.dropout1, layer.dropout2
        act = layer.activation
        # a module so that the config can name it (`layers.0.activation`) and fx sees one layer
        self.activation = _ACTIVATIONS[act]() if not isinstance(act, nn.Module) and act in _ACTIVATIONS else act

    def _sa_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout1(self.self_attn(x, x, x, need_weights=False)[0])

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        _refuse_masks(self.where, src_mask, src_key_padding_mask, is_causal)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x))
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x))
        return self.norm2(x + self._ff_block(x))


class DecomposedEncoder(nn.Module):
    """An nn.TransformerEncoder: its layers in turn (each a DecomposedEncoderLayer), then `norm`."""

    def __init__(self, encoder: nn.TransformerEncoder, name: str = ""):
        super().__init__()
        self.where = f"layer {name or type(encoder).__name__!r} (TransformerEncoder)"
        prefix = f"{name}.layers" if name else "layers"
        self.layers = nn.ModuleList(_rewritten(m, f"{prefix}.{i}") for i, m in enumerate(encoder.layers))
        self.norm = encoder.norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        _refuse_masks(self.where, mask, src_key_padding_mask, is_causal)
        x = src
        for layer in self.layers:
            x = layer(x)
        return self.norm(x) if self.norm is not None else x


class TransformerEncoderLayerAlone(DecomposedEncoderLayer):
    """The traced network itself: fx makes a graph input of every forward argument, so only `src`."""

    def forward(self, src):
        return super().forward(src)


class TransformerEncoderAlone(DecomposedEncoder):
    """The traced network itself: fx makes a graph input of every forward argument, so only `src`."""

    def forward(self, src):
        return super().forward(src)


def _rewritten(m: nn.Module, name: str) -> nn.Module:
    """m as plain layers (in place for its children); m itself when it is no encoder."""
    if isinstance(m, nn.TransformerEncoder):
        return DecomposedEncoder(m, name)
    if isinstance(m, nn.TransformerEncoderLayer):
        return DecomposedEncoderLayer(m, name)
    for child_name, child in list(m.named_children()):
        new = _rewritten(child, f"{name}.{child_name}" if name else child_name)
        if new is not child:
            setattr(m, child_name, new)
    return m


def without_transformers(net: nn.Module) -> nn.Module:
    """`net` itself when it holds no TransformerEncoder(Layer), else a copy with each one decomposed."""
    kinds = (nn.TransformerEncoder, nn.TransformerEncoderLayer)
    if not any(isinstance(m, kinds) for m in net.modules()):
        return net
    net = copy.deepcopy(net)
    if isinstance(net, nn.TransformerEncoder):
        return TransformerEncoderAlone(net)
    if isinstance(net, nn.TransformerEncoderLayer):
        return TransformerEncoderLayerAlone(net)
    return _rewritten(net, "")
