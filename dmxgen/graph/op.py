"""Operators of the integer graph.

An op refers to its tensors by name. `attrs` hold everything a kernel needs as
plain integers and tuples (requantization multipliers and shifts, padding,
clamp bounds), derived once by a frontend, so that the reference and every
backend read the same numbers and none of them does float arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kind -> (number of required inputs, short description)
OP_KINDS: dict[str, str] = {
    "conv2d": "2-D convolution, NHWC input, OHWI weights, int32 bias",
    "depthwise_conv2d": "depthwise 2-D convolution, NHWC input, 1HWC weights",
    "fully_connected": "matrix-vector product, [out, in] weights",
    "add": "elementwise add with broadcasting",
    "mul": "elementwise multiply with broadcasting",
    "avg_pool2d": "2-D average pooling, NHWC",
    "max_pool2d": "2-D max pooling, NHWC",
    "reshape": "new shape, same bytes",
    "softmax": "softmax over the last axis",
    "quantize": "float32 -> int8, or int8 -> int8 requantization",
    "dequantize": "int8 -> float32",
    "pad": "constant padding",
    "reduce_max": "max over axes",
    "mean": "mean over axes",
    "lut": "int8 elementwise lookup table: out = table[in + 128] (any activation of an int8 tensor)",
    "concat": "concatenation along `axis` of int8 tensors that share one scale and zero point",
}


@dataclass
class Op:
    name: str
    kind: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError(f"op {self.name!r}: unknown kind {self.kind!r}")
