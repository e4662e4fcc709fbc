"""SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND, fused into one dilated conv.

This is how TensorFlow writes an atrous convolution (and older converters leave it so): the image is
split into block x block phases stacked on the batch, a dense conv runs on each, and the phases are
interleaved back. One conv with dilation = block (times the inner conv's own dilation) reads the
same input codes with the same weights, and every tap the chain reads from its padding (the zero
point, as LiteRT pads) or from the inner conv's padding lands outside the image, where the dilated
conv adds zero too: the integer accumulators, hence the outputs, are the same. The fusion saves
the copies and a batch of block*block. It runs after loading, on the ops the mappings made (the
chains of frontends/tflite_ops/moves.py), and leaves any chain it cannot fuse as it is.
"""
from __future__ import annotations

from ..graph import Graph, Op
from .tflite_registry import _OPNAME

CONVS = ("conv2d", "depthwise_conv2d")


def _chains(reader) -> tuple[dict, dict]:
    """The model's SPACE_TO_BATCH_ND operators by output tensor and BATCH_TO_SPACE_ND by input:
    (the other end, block_shape, paddings or crops), 4-D ones only."""
    from .tflite import _builtin_code

    g, sg = reader.g, reader.sg
    s2b, b2s = {}, {}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        opname = _OPNAME.get(_builtin_code(reader.model.OperatorCodes(op.OpcodeIndex())))
        if opname not in ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"):
            continue
        x, block, amounts = (g.tensors[reader.names[op.Inputs(k)]] for k in range(3))
        y = reader.names[op.Outputs(0)]
        if len(x.shape) != 4:
            continue
        facts = (tuple(int(v) for v in block.data.reshape(-1)),
                 [[int(v) for v in r] for r in amounts.data.reshape(2, 2)])
        if opname == "SPACE_TO_BATCH_ND":
            s2b[y] = (x.name, *facts)
        else:
            b2s[x.name] = (y, *facts)
    return s2b, b2s


def _producers(g: Graph, start: str, stop: str) -> list[Op] | None:
    """The ops from tensor `stop` to tensor `start`, a chain of one-input ops, each tensor in between
    read by the next op only; None when the ops between them are not such a chain."""
    made = {o: op for op in g.ops for o in op.outputs}
    chain, t = [], start
    while t != stop:
        op = made.get(t)
        if op is None or len(op.outputs) != 1:
            return None
        if t != start and (t in g.outputs or [o.name for o in g.ops if t in o.inputs] != [chain[-1].name]):
            return None
        chain.append(op)
        t = op.inputs[0]
    return chain[::-1]


def _fused_attrs(g: Graph, conv: Op, x: str, y: str, block, pads, crops) -> dict | None:
    a = dict(conv.attrs)
    if tuple(a["stride"]) != (1, 1):
        return None
    _, kh, kw, _ = g.tensors[conv.inputs[1]].shape
    (bh, bw), (dh, dw) = block, a["dilation"]
    it, il, _, _ = a["pad"]
    top, left = pads[0][0] + it * bh - crops[0][0], pads[1][0] + il * bw - crops[1][0]
    _, h, w, _ = g.tensors[x].shape
    _, oh, ow, _ = g.tensors[y].shape
    bottom = oh - 1 + (kh - 1) * dh * bh + 1 - h - top
    right = ow - 1 + (kw - 1) * dw * bw + 1 - w - left
    if min(top, left, bottom, right) < 0:  # the chain crops into the image: no padding says it
        return None
    a["dilation"], a["pad"] = (dh * bh, dw * bw), (top, left, bottom, right)
    return a


def fuse_dilated_convs(reader) -> Graph:
    """reader.g with each SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND of one block whose inner
    conv has stride 1 and whose intermediates nothing else reads replaced by one dilated conv."""
    g = reader.g
    s2b, b2s = _chains(reader)
    for conv in [op for op in g.ops if op.kind in CONVS]:
        sb, cv = conv.inputs[0], conv.outputs[0]
        if sb not in s2b or cv not in b2s:
            continue
        (x, block, pads), (y, block2, crops) = s2b[sb], b2s[cv]
        before, after = _producers(g, sb, x), _producers(g, y, cv)
        readers_sb = [o.name for o in g.ops if sb in o.inputs]
        if block != block2 or before is None or after is None or readers_sb != [conv.name] or cv in g.outputs:
            continue
        if [o.name for o in g.ops if cv in o.inputs] != [after[0].name] or sb in g.outputs:
            continue
        if g.tensors[x].shape[0] * block[0] * block[1] != g.tensors[sb].shape[0]:
            continue
        attrs = _fused_attrs(g, conv, x, y, block, pads, crops)
        if attrs is None:
            continue
        gone = {op.name for op in before + after}
        dead = ({t for op in before + after for t in op.outputs} | {cv}) - {y}
        fused = Op(conv.name, conv.kind, [x] + conv.inputs[1:], [y], attrs)
        g.ops = [fused if op is conv else op for op in g.ops if op.name not in gone]
        for t in dead:
            del g.tensors[t]
    return g
