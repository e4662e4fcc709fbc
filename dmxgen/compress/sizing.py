"""The exact bytes `dmxgen export` would write for a model's Conv/Linear layers.

Not an estimate: the model's integer Graph is built (as dmxgen.save does), lowered and
resolved by the C backend's own code (backends.c.build_layers with the codecs
and the storage policy's choice of format, codecs/policy.py), so every layer's weight bytes
(the encoded matrix in the chosen format, INT4 packing included) and
parameter bytes (bias, per-channel multipliers and shifts) are the numbers
manifest.json reports for the same model and options.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..codecs.policy import EXPORT, SIZING, choose

WEIGHTED_OPS = ("conv2d", "fully_connected", "depthwise_conv2d")


@dataclass(frozen=True)
class LayerBytes:
    name: str
    op: str
    format: str
    weight_bytes: int  # the encoded weight arrays
    param_bytes: int  # bias, multipliers, shifts
    dense_weight_bytes: int  # the same weights as a dense int8 matrix

    @property
    def total(self) -> int:
        return self.weight_bytes + self.param_bytes


@dataclass(frozen=True)
class ModelBytes:
    layers: dict[str, LayerBytes]
    storage: str
    min_sparsity: float

    @property
    def weight_bytes(self) -> int:
        return sum(x.weight_bytes for x in self.layers.values())

    @property
    def param_bytes(self) -> int:
        return sum(x.param_bytes for x in self.layers.values())

    @property
    def dense_weight_bytes(self) -> int:
        return sum(x.dense_weight_bytes for x in self.layers.values())

    @property
    def total(self) -> int:
        return self.weight_bytes + self.param_bytes


def graph_bytes(graph, storage: str = EXPORT.fmt, min_sparsity: float = EXPORT.min_sparsity) -> ModelBytes:
    """Bytes of every Conv/Linear op of an integer Graph as `dmxgen export --format storage
    --min-sparsity min_sparsity` would store them."""
    from ..passes import lower

    return _lowered_bytes(lower(graph), replace(SIZING, fmt=storage, min_sparsity=min_sparsity))


def _lowered_bytes(lowered, policy) -> ModelBytes:
    from ..backends.c import build_layers

    _, layers = build_layers(lowered, policy)
    rows = {}
    for layer, op in zip(layers, lowered.ops):
        if op.kind in WEIGHTED_OPS:
            rows[op.name] = LayerBytes(op.name, op.kind, layer.info.get("format", "dense"), layer.weight_bytes,
                                       layer.param_bytes, int(layer.info.get("dense_weight_bytes", 0)))
    return ModelBytes(rows, policy.fmt, policy.min_sparsity)


def model_bytes(model, example_input, storage: str = EXPORT.fmt,
                min_sparsity: float = EXPORT.min_sparsity) -> ModelBytes:
    """graph_bytes of a transformed, calibrated dmxgen.Model (example_input: one batch, any size)."""
    return graph_bytes(model.to_graph(example_input[:1]), storage, min_sparsity)


class LayerSizer:
    """model_bytes, kept up to date one layer at a time.

    `measure` builds the whole graph once (the exact figure, as above) and
    remembers, per Conv/Linear, where each torch weight lands in the matrix the
    codec encodes. `layer_bytes` then re-encodes only the layer whose mask
    changed, with the same storage policy, instead of rebuilding the graph for
    every density try. A layer whose layout it cannot reproduce exactly (checked
    against the built graph) falls back to a full build. Parameter bytes
    (bias, multipliers, shifts) do not depend on the mask and stay cached.
    """

    def __init__(self, example_input, storage: str = EXPORT.fmt, min_sparsity: float = EXPORT.min_sparsity):
        self.example = example_input[:1]
        self.policy = replace(SIZING, fmt=storage, min_sparsity=min_sparsity)
        self.sizes: ModelBytes | None = None
        self.maps: dict[str, tuple] = {}  # layer -> (index map into the torch codes, op kind, weight bits)
        self.full_builds = 0

    def measure(self, model) -> ModelBytes:
        """The exact bytes from a full graph build; refreshes the per-layer cache."""
        from ..passes import lower

        graph = lower(model.to_graph(self.example))
        self.full_builds += 1
        self.sizes = _lowered_bytes(graph, self.policy)
        layers = model.weighted_layers()
        self.maps = {}
        for op in graph.ops:
            if op.name in self.sizes.layers and op.name in layers:
                index = _index_map(layers[op.name], graph.weights(op).data)
                if index is not None:
                    self.maps[op.name] = (index, op.kind, op.attrs.get("weight_bits", 8))
        return self.sizes

    def layer_bytes(self, model, name: str) -> LayerBytes:
        """`name`'s bytes with its current mask and weights; every other layer as last measured."""
        if self.sizes is None or name not in self.maps:
            return self.measure(model).layers[name]
        index, kind, bits = self.maps[name]
        codes = _torch_codes(model.weighted_layers()[name])
        choice = choose(self.policy, name, kind, _gather(codes, index), bits)
        old = self.sizes.layers[name]
        return replace(old, format=choice.fmt, weight_bytes=choice.nbytes)


def _torch_codes(layer) -> np.ndarray:
    with torch.no_grad():
        return layer.quantized()[1].cpu().numpy().astype(np.int64)


def _gather(codes: np.ndarray, index: np.ndarray) -> np.ndarray:
    return codes.reshape(-1)[index].astype(np.int8)


def _index_map(layer, graph_weight):
    """Flat indices into the layer's torch weight codes giving the graph's weight tensor, or None
    when no known layout (Linear as is or after an NCHW flatten, Conv OIHW -> OHWI) reproduces it."""
    codes = _torch_codes(layer)
    idx = np.arange(codes.size).reshape(codes.shape)
    candidates = []
    if codes.ndim == 2:
        candidates.append(idx)
        cols = codes.shape[1]
        for c in range(2, cols):
            if cols % c == 0:  # the torch frontend's flatten of [N, c, spatial]: graph order (spatial, c)
                pos, ch = np.meshgrid(np.arange(cols // c), np.arange(c), indexing="ij")
                candidates.append(idx[:, (ch * (cols // c) + pos).reshape(-1)])
    elif codes.ndim == 4 and getattr(layer.layer, "groups", 1) == 1:
        candidates.append(idx.transpose(0, 2, 3, 1))
    elif codes.ndim == 3 and getattr(layer.layer, "groups", 1) == 1:
        candidates.append(idx[:, :, None, :].transpose(0, 2, 3, 1))
    found = [c for c in candidates if c.shape == graph_weight.shape
             and np.array_equal(codes.reshape(-1)[c], graph_weight.astype(np.int64))]
    return found[0] if len(found) == 1 else None
