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

from ..codecs.policy import EXPORT

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
    from ..backends.c import build_layers
    from ..passes import lower

    lowered = lower(graph)
    _, layers = build_layers(lowered, replace(EXPORT, fmt=storage, min_sparsity=min_sparsity))
    rows = {}
    for layer, op in zip(layers, lowered.ops):
        if op.kind in WEIGHTED_OPS:
            rows[op.name] = LayerBytes(op.name, op.kind, layer.info.get("format", "dense"), layer.weight_bytes,
                                       layer.param_bytes, int(layer.info.get("dense_weight_bytes", 0)))
    return ModelBytes(rows, storage, min_sparsity)


def model_bytes(model, example_input, storage: str = EXPORT.fmt,
                min_sparsity: float = EXPORT.min_sparsity) -> ModelBytes:
    """graph_bytes of a transformed, calibrated dmxgen.Model (example_input: one batch, any size)."""
    return graph_bytes(model.to_graph(example_input[:1]), storage, min_sparsity)
