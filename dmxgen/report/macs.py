"""Multiply-accumulates per layer, from the shapes an exported manifest records."""
from __future__ import annotations

from math import prod


def layer_macs(layer: dict) -> int:
    """MACs of one manifest layer: conv2d, depthwise_conv2d and fully_connected; 0 for other ops.

    Weight shapes are TFLite's: conv [out, kh, kw, in/groups], depthwise [1, kh, kw, channels],
    fully connected [units, in]. Every output element of a conv takes kh*kw*in MACs, of a depthwise
    conv kh*kw, of a fully connected layer `in`.
    """
    op, w, out = layer.get("op"), layer.get("weight_shape"), layer.get("output")
    if not w or not out:
        return 0
    if op == "conv2d" and len(w) == 4:
        return prod(out) * w[1] * w[2] * w[3]
    if op == "depthwise_conv2d" and len(w) == 4:
        return prod(out) * w[1] * w[2]
    if op == "fully_connected" and len(w) == 2:
        return prod(out) * w[1]
    return 0
