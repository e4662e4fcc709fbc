"""Spec bases for kinds that share inputs, checks and (for pooling) attributes."""
from __future__ import annotations

from dataclasses import dataclass

from ._checks import broadcast
from ._spec import ACTIVATION, BIAS, WEIGHTS, OpSpec, Pair, Quad
from ._windows import check_conv, check_pool


class WeightedSpec(OpSpec):
    """conv2d, depthwise_conv2d, fully_connected: activation, constant weights, optional int32 bias."""

    inputs = (ACTIVATION, WEIGHTS, BIAS)
    min_inputs = 2
    weight_formats = ("dense", "csr", "dcsr")


class ConvSpec(WeightedSpec):
    depthwise = False

    def check(self, op, ins, out):
        return check_conv(op, ins, out, depthwise=self.depthwise)


class BinarySpec(OpSpec):
    """add, mul: two activations that broadcast; the output may reuse a dying input's bytes."""

    inputs = (ACTIVATION, ACTIVATION)

    def inplace(self, op) -> bool:
        return True

    def check(self, op, ins, out):
        return broadcast(ins, out)


@dataclass(frozen=True)
class Pool2dAttrs:
    filter: Pair
    stride: Pair
    pad: Quad  # top, left, bottom, right
    activation: str
    act_min: int
    act_max: int


class Pool2dSpec(OpSpec):
    Attrs = Pool2dAttrs

    def check(self, op, ins, out):
        return check_pool(op, ins, out)
