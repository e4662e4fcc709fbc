"""Per-op shape rules, checked by Graph.validate() for any frontend."""
from __future__ import annotations

import numpy as np


def _conv_out(in_size: int, k: int, stride: int, dil: int, pad_before: int, pad_after: int) -> int:
    return (in_size + pad_before + pad_after - ((k - 1) * dil + 1)) // stride + 1


def check_op(g, op) -> str | None:
    """Return a description of the first problem, or None."""
    t = g.tensors
    ins = [t[n] if n else None for n in op.inputs]
    outs = [t[n] for n in op.outputs]
    if not outs:
        return "has no output"
    out = outs[0]
    if op.kind in ("conv2d", "depthwise_conv2d"):
        x, w = ins[0], ins[1]
        if len(x.shape) != 4 or len(w.shape) != 4 or len(out.shape) != 4:
            return f"expects 4-D input, weights and output, got {list(x.shape)}, {list(w.shape)}, {list(out.shape)}"
        kh, kw = w.shape[1], w.shape[2]
        sh, sw = op.attrs["stride"]
        dh, dw = op.attrs["dilation"]
        pt, pl, pb, pr = op.attrs["pad"]
        want = (x.shape[0], _conv_out(x.shape[1], kh, sh, dh, pt, pb), _conv_out(x.shape[2], kw, sw, dw, pl, pr))
        cout = w.shape[0] if op.kind == "conv2d" else w.shape[3]
        if op.kind == "conv2d" and w.shape[3] != x.shape[3]:
            return f"weights {list(w.shape)} expect {w.shape[3]} input channels, input {list(x.shape)} has {x.shape[3]}"
        if op.kind == "depthwise_conv2d" and cout != x.shape[3] * op.attrs.get("depth_multiplier", 1):
            return f"weights {list(w.shape)} do not match input channels {x.shape[3]}"
        if want + (cout,) != out.shape:
            return f"output shape {list(out.shape)} should be {list(want + (cout,))}"
        if len(ins) > 2 and ins[2] is not None and ins[2].shape != (cout,):
            return f"bias shape {list(ins[2].shape)} should be [{cout}]"
        if np.size(op.attrs["multiplier"]) != cout:
            return f"{np.size(op.attrs['multiplier'])} requantization multipliers for {cout} channels"
    elif op.kind == "fully_connected":
        x, w = ins[0], ins[1]
        if len(w.shape) != 2:
            return f"weights must be 2-D, got {list(w.shape)}"
        if x.size % w.shape[1] != 0:
            return f"input {list(x.shape)} is not a whole number of rows of {w.shape[1]}"
        if out.size != (x.size // w.shape[1]) * w.shape[0]:
            return f"output shape {list(out.shape)} should hold {(x.size // w.shape[1]) * w.shape[0]} values"
        if not out.shape or out.shape[-1] != w.shape[0]:
            return f"output shape {list(out.shape)} should end in the {w.shape[0]} output channels"
    elif op.kind in ("add", "mul"):
        try:
            shape = np.broadcast_shapes(ins[0].shape, ins[1].shape)
        except ValueError:
            return f"input shapes {list(ins[0].shape)} and {list(ins[1].shape)} do not broadcast"
        if tuple(shape) != out.shape:
            return f"output shape {list(out.shape)} should be {list(shape)}"
    elif op.kind in ("avg_pool2d", "max_pool2d"):
        x = ins[0]
        kh, kw = op.attrs["filter"]
        sh, sw = op.attrs["stride"]
        pt, pl, pb, pr = op.attrs["pad"]
        want = (x.shape[0], _conv_out(x.shape[1], kh, sh, 1, pt, pb), _conv_out(x.shape[2], kw, sw, 1, pl, pr), x.shape[3])
        if want != out.shape:
            return f"output shape {list(out.shape)} should be {list(want)}"
    elif op.kind == "reshape":
        if ins[0].size != out.size:
            return f"input {list(ins[0].shape)} and output {list(out.shape)} hold different numbers of values"
    elif op.kind in ("softmax", "quantize", "dequantize"):
        # elementwise (softmax along the last axis): TFLite gives the output the input's shape
        if ins[0].shape != out.shape:
            return f"output shape {list(out.shape)} should be the input's {list(ins[0].shape)}"
    elif op.kind in ("reduce_max", "mean"):
        kept = [d for i, d in enumerate(ins[0].shape) if i not in op.attrs["axes"]]
        if int(np.prod(kept, dtype=np.int64)) != out.size:
            return f"reducing {list(ins[0].shape)} over axes {list(op.attrs['axes'])} cannot give {list(out.shape)}"
    elif op.kind == "lut":
        if ins[0].shape != out.shape:
            return f"input {list(ins[0].shape)} and output {list(out.shape)} differ"
        if np.size(op.attrs["table"]) != 256:
            return f"table has {np.size(op.attrs['table'])} entries, expected 256"
    elif op.kind == "concat":
        axis = op.attrs["axis"]
        if any(len(t.shape) != len(out.shape) for t in ins):
            return "inputs and output differ in rank"
        if sum(t.shape[axis] for t in ins) != out.shape[axis]:
            return f"input sizes along axis {axis} do not add up to the output's {out.shape[axis]}"
        q = out.quant
        for t in ins:
            if t.quant is not None and q is not None and (t.quant.s, t.quant.zp) != (q.s, q.zp):
                return f"input {t.name!r} is on a different grid than the output"
    elif op.kind == "pad":
        want = tuple(d + a + b for d, (a, b) in zip(ins[0].shape, op.attrs["paddings"]))
        if want != out.shape:
            return f"output shape {list(out.shape)} should be {list(want)}"
    return None
