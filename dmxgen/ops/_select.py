"""What sub, maximum and minimum share: the broadcast walk their kernels take, and the spec of
the two kinds that pick one of two codes on one grid (TFLite MAXIMUM / MINIMUM)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import loops
from ._families import BinarySpec


def broadcast_shape(graph, op) -> dict:
    """The broadcast walk of a binary op as the kernels' dmx_bcast_t (n, a_stride, b_stride), 4 loops."""
    shape = [graph.tensors[name].shape for name in (op.outputs[0], op.inputs[0], op.inputs[1])]
    walk = loops.broadcast(*shape).collapse(f"layer {op.name!r} ({op.kind})")
    return {"n": walk.n, "a_stride": walk.strides[0], "b_stride": walk.strides[1]}


def grid(t) -> tuple | None:
    """A tensor's quantization grid (float32 scale, zero point), None when it has none or one per channel."""
    q = t.quant
    if q is None or q.per_channel:
        return None
    return float(np.float32(q.s)), int(q.zp)


@dataclass(frozen=True)
class SelectAttrs:
    pass  # the kernel compares codes: no constants


class SelectSpec(BinarySpec):
    """maximum, minimum: the larger (smaller) code of each pair; inputs and output share one grid."""

    Attrs = SelectAttrs
    targets = ("c", "hls", "tflite", "torch")
    pick = staticmethod(np.maximum)

    def check(self, op, ins, out):
        grids = [grid(t) for t in (*ins, out)]
        if grids[0] is None or len(set(grids)) != 1:
            return (f"inputs and output must share one per-tensor quantization grid (TFLite compares codes), "
                    f"got {', '.join(t.quant.describe() if t.quant else 'none' for t in (*ins, out))}")
        return super().check(op, ins, out)

    def reference(self, op, args, out_t):
        return np.broadcast_to(self.pick(args[0], args[1]), out_t.shape).astype(out_t.dtype)

    def kernel_params(self, graph, op):
        return {"shape": broadcast_shape(graph, op)}
