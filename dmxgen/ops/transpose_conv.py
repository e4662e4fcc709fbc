"""transpose_conv: TFLite's reference_integer_ops::TransposeConv (NHWC input, OHWI weights, int32 bias).

TFLite scatters every input pixel times every tap into an int32 scratch of the output's size,
then adds the bias and requantizes per output channel. The sums are the same when each output
pixel gathers the input pixels and taps that land on it (output y = input y * stride - pad + ky),
which is what the C and HLS kernels do: no scratch. The reference keeps TFLite's scatter form, so
the two forms check each other.

The attrs are explicit: `pad` is the (top, left) offset of the scatter (TFLite's padding values,
PyTorch's `padding`), and the output size is the output tensor's (TFLite's output_shape input,
PyTorch's output size with output_padding), so both frontends map onto one op.

The weights and the bias are constants the kernels read from `kernel_params` (dense int8 and int32
arrays). Both have the `bias` role, not `weights`: a `weights` input is one the storage codecs may
encode as CSR/dCSR (Graph.weights(), `dmxgen compress`, tflite_packed), and these kernels read dense
weights only; not `activation` either, which would make them run-time inputs of the HLS layer.

16x8 (int16 activations, zero point 0, int8 weights, an int64 bias or none): TFLite's TransposeConv
of int16_t with an int64 scratch, requantized with the 64-bit MultiplyByQuantizedMultiplier (the
multiplier reduced to 16 bits, "reduced" in graph/fixedpoint.py) in LiteRT and TFLite Micro alike;
the int16 output selects it, and the C kernel's own struct (s16/transpose_conv.c.j2) holds the
int64 bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._requant import exact_matmul, requantize
from ._spec import ACTIVATION, BIAS, OpSpec, Pair, PerChannel


@dataclass(frozen=True)
class TransposeConvAttrs:
    stride: Pair
    pad: Pair  # top, left: output y = input y * stride_h - pad_top + ky
    input_offset: int  # -zero point of the input
    output_offset: int  # zero point of the output
    multiplier: PerChannel  # Q31 requantization multiplier per output channel
    shift: PerChannel
    activation: str  # the fused activation's name, for reports; act_min/act_max apply it
    act_min: int
    act_max: int


def per_channel(values, channels: int) -> np.ndarray:
    """A PerChannel attribute as one int32 per output channel."""
    return np.broadcast_to(np.asarray(values, np.int64), (channels,)).astype(np.int32)


@register
class TransposeConv(OpSpec):
    kind = "transpose_conv"
    summary = "transposed 2-D convolution, NHWC input, OHWI weights, int32 bias"
    Attrs = TransposeConvAttrs
    targets = ("c", "hls", "tflite", "torch")
    dtypes = ("int8", "int16")  # int16: TFLite's 16x8 (C: scalar only; HLS)
    inputs = (ACTIVATION, BIAS, BIAS)  # input, weights, bias: constants read dense (see the docstring)
    min_inputs = 2

    def check(self, op, ins, out):
        x, w = ins[0], ins[1]
        if len(x.shape) != 4 or len(w.shape) != 4 or len(out.shape) != 4:
            return f"expects 4-D input, weights and output, got {list(x.shape)}, {list(w.shape)}, {list(out.shape)}"
        cout, _, _, cin = w.shape
        if cin != x.shape[3]:
            return f"weights {list(w.shape)} expect {cin} input channels, input {list(x.shape)} has {x.shape[3]}"
        if (out.shape[0], out.shape[3]) != (x.shape[0], cout):
            return f"output shape {list(out.shape)} should have batch {x.shape[0]} and {cout} channels"
        if min(op.a.stride) < 1 or min(op.a.pad) < 0:
            return f"stride {list(op.a.stride)} and pad {list(op.a.pad)} must be positive and non-negative"
        if len(ins) > 2 and ins[2] is not None and ins[2].shape != (cout,):
            return f"bias shape {list(ins[2].shape)} should be [{cout}]"
        if np.size(op.a.multiplier) not in (1, cout):
            return f"{np.size(op.a.multiplier)} requantization multipliers for {cout} channels"
        return None

    def reference(self, op, args, out_t):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        a = op.a
        cout, kh, kw, cin = w.shape
        n, ih, iw, _ = x.shape
        _, oh, ow, _ = out_t.shape
        (sh, sw), (pt, pl) = a.stride, a.pad
        xo = (x.astype(np.int64) + a.input_offset).reshape(n * ih * iw, cin)
        acc = np.zeros((n, oh, ow, cout), np.int64)  # TFLite's scratch: every tap scattered into it
        iy, ix = np.arange(ih) * sh - pt, np.arange(iw) * sw - pl
        for ky in range(kh):
            ys = iy + ky
            keep_y = (ys >= 0) & (ys < oh)
            for kx in range(kw):
                xs = ix + kx
                keep_x = (xs >= 0) & (xs < ow)
                part = exact_matmul(xo, w[:, ky, kx, :].T).reshape(n, ih, iw, cout)
                acc[:, ys[keep_y][:, None], xs[keep_x][None, :], :] += part[:, keep_y][:, :, keep_x]
        if bias is not None:
            acc += bias.astype(np.int64)
        return requantize(acc, a, out_t.dtype, "reduced" if out_t.dtype == "int16" else "double")

    def kernel_params(self, graph, op):
        x, w = (graph.tensors[n] for n in op.inputs[:2])
        out = graph.tensors[op.outputs[0]]
        a = op.a
        cout, kh, kw, cin = w.shape
        has_bias = len(op.inputs) > 2 and op.inputs[2]
        wide = np.int64 if out.dtype == "int16" else np.int32  # 16x8: the int64 bias
        bias = graph.tensors[op.inputs[2]].data.astype(wide) if has_bias else np.zeros(cout, wide)
        return {"batches": x.shape[0], "in_h": x.shape[1], "in_w": x.shape[2], "in_c": cin,
                "out_h": out.shape[1], "out_w": out.shape[2], "out_c": cout, "k_h": kh, "k_w": kw,
                "stride_h": a.stride[0], "stride_w": a.stride[1], "pad_top": a.pad[0], "pad_left": a.pad[1],
                "input_offset": a.input_offset, "output_offset": a.output_offset,
                "act_min": a.act_min, "act_max": a.act_max,
                "weights": np.ascontiguousarray(w.data.astype(np.int8)), "bias": bias,
                "multiplier": per_channel(a.multiplier, cout), "shift": per_channel(a.shift, cout)}
