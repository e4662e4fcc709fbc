"""C layers of TFLite's 16x8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED.

int16 activations (zero point 0, so no input offset to fold), int8 weights stored dense, an
int64 bias (an int32 one widened), int64 accumulators. The kernels are the "s16" variants of
the conv2d, depthwise_conv2d, fully_connected and matvec_dense templates
(templates/c/kernels/s16/); in the MVE build their matrix-vector product is
s16/matvec_dense_mve.c.j2's (CONV_2D, FULLY_CONNECTED) and s16/depthwise_conv2d_mve.c.j2. The int8
resolvers in c_layers.py hand a 16x8 op over to these.
"""
from __future__ import annotations

import numpy as np

from ..codecs import encode
from ..codecs.policy import Choice
from ..errors import DmxError
from ..graph import Graph, Op
from .c_params import Field, fields


def is_16x8(graph: Graph, op: Op) -> bool:
    return graph.tensors[op.inputs[0]].dtype == "int16"


def _weights(r, layer, op: Op) -> Choice:
    """The layer's storage, dense: CSR, dCSR and INT4 have no 16x8 kernel. A sparse format the policy
    chose (auto, or --format for every layer) becomes dense; one asked for this layer is refused."""
    lw = r.storage[op.name]
    if lw.fmt != "dense" and lw.reason != "requested for this layer":
        r.storage[op.name] = Choice("dense", encode("dense", lw.matrix), lw.matrix, lw.sparsity,
                                    f"16x8 layers have dense kernels only (not {lw.fmt}: {lw.reason})")
    lw = r.weights(layer, op)
    if lw.fmt != "dense" or op.attrs.get("weight_bits", 8) != 8:
        stored = lw.fmt if lw.fmt != "dense" else "INT4"
        raise DmxError(f"layer {layer.name!r} ({op.kind}): 16x8 (int16) layers read dense int8 weights only; "
                       f"these are stored {stored} ({lw.reason}): store them dense")
    return lw


def _dense(r, layer, op: Op, lw: Choice) -> list[Field]:
    """The dmx_dense_s16_t of the layer."""
    rows, cols = lw.matrix.shape
    return fields(rows=rows, cols=cols, values=layer.array("values", lw.enc.arrays["values"], "weights", "dense"),
                  bias=layer.array("bias", r.bias(op, rows), "params", "int64 bias"))


def conv2d(r, layer, op: Op, i: int, direct: bool) -> None:
    at = op.attrs
    n, in_h, in_w, in_c = r.shape(op.inputs[0])
    _, out_h, out_w, out_c = r.shape(op.outputs[0])
    _, kh, kw, _ = r.shape(op.inputs[1])
    w = _dense(r, layer, op, _weights(r, layer, op))
    pt, pl, _, _ = at["pad"]
    layer.kernel, layer.struct_type = "dmx_conv2d_dense_s16", "dmx_conv2d_dense_s16_t"
    layer.templates = [("matvec_dense", "s16"), ("conv2d", "s16")]
    layer.fields = fields(batches=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                          k_h=kh, k_w=kw, stride_h=at["stride"][0], stride_w=at["stride"][1],
                          dil_h=at["dilation"][0], dil_w=at["dilation"][1], pad_top=pt, pad_left=pl,
                          direct=direct, w=w, rq=r.requant(layer, op))
    layer.args = [r.ref(layer, op.inputs[0]), r.out_ref(layer, op), r.scratch_ref(i, "int16_t")]


def fully_connected(r, layer, op: Op, i: int) -> None:
    w = _dense(r, layer, op, _weights(r, layer, op))
    layer.kernel, layer.struct_type = "dmx_fully_connected_dense_s16", "dmx_fully_connected_dense_s16_t"
    layer.templates = [("matvec_dense", "s16"), ("fully_connected", "s16")]
    layer.fields = fields(batches=op.attrs["batches"], w=w, rq=r.requant(layer, op))
    layer.args = [r.ref(layer, op.inputs[0]), r.out_ref(layer, op)]


def depthwise_conv2d(r, layer, op: Op, i: int) -> None:
    at = op.attrs
    n, in_h, in_w, in_c = r.shape(op.inputs[0])
    _, out_h, out_w, out_c = r.shape(op.outputs[0])
    _, kh, kw, _ = r.shape(op.inputs[1])
    lw = _weights(r, layer, op)  # always dense (the kind's only format)
    pt, pl, _, _ = at["pad"]
    layer.kernel, layer.struct_type = "dmx_depthwise_conv2d_s16", "dmx_depthwise_conv2d_s16_t"
    layer.templates = [("matvec_dense", "s16"), ("depthwise_conv2d", "s16")]  # matvec_dense's: dmx_requant_s16
    layer.fields = fields(
        batches=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
        depth_mult=at.get("depth_multiplier", 1), k_h=kh, k_w=kw, stride_h=at["stride"][0],
        stride_w=at["stride"][1], dil_h=at["dilation"][0], dil_w=at["dilation"][1], pad_top=pt, pad_left=pl,
        w=layer.array("values", lw.enc.arrays["values"], "weights", "dense taps"),
        bias=layer.array("bias", np.asarray(r.bias(op, out_c), np.int64), "params", "int64 bias"),
        rq=r.requant(layer, op))
    layer.args = [r.ref(layer, op.inputs[0]), r.out_ref(layer, op)]
