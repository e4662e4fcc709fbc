"""gru: a GRU over a sequence, int8 input and output, the state int16 on Q0.15 (dmxgen's own kind).

TFLite has no GRU builtin, so there is no golden: the arithmetic is built from the integer LSTM's
pieces (docs/lstm.md#gru), each bit-exact with LiteRT there: gate pre-activations requantized to
Q3.12 and saturated, gemmlowp's int16 logistic and tanh, products rounded by a power of two. The
state h is a convex mix of tanh values from 0, so |h| < 1: it lives on Q0.15 without calibration;
its int8 rendering on the output's grid is the step's output and the recurrent matmul's input.
Gates in PyTorch's order: reset, update, new. The reference starts every call from the state
constant (zeros); the C model and the HLS top keep the state across calls, as an LSTM's (docs/lstm.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..graph.fixedpoint import rounding_divide_by_pot
from . import register
from ._lstm_int import clamp16, gemmlowp_logistic16, gemmlowp_tanh16
from ._spec import ACTIVATION, BIAS, WEIGHTS, Ints, OpSpec

GATES = ("reset", "update", "new")
# x, the input and recurrent weights per gate, the input-side biases (reset and update with the
# recurrent biases folded in), the new gate's recurrent bias (inside the reset product), the state
X, W_IN, W_REC, B_IN, B_REC_NEW, H0 = 0, 1, 4, 7, 10, 11
ONE_Q15 = 1 << 15


@dataclass(frozen=True)
class GruAttrs:
    input_zp: int
    state_zp: int  # the output's zero point: the int8 hidden state the recurrent matmul reads
    input_multiplier: Ints  # per gate: input matmul -> Q3.12
    input_shift: Ints
    recurrent_multiplier: Ints  # per gate: recurrent matmul -> Q3.12
    recurrent_shift: Ints
    output_multiplier: int  # the Q0.15 state -> the int8 output grid
    output_shift: int


@register
class Gru(OpSpec):
    kind = "gru"
    summary = "int8 sequence GRU with an int16 Q0.15 state (dmxgen's own, the integer LSTM's arithmetic)"
    Attrs = GruAttrs
    targets = ("c", "hls", "torch")
    inputs = (ACTIVATION,) + (WEIGHTS,) * 6 + (BIAS,) * 4 + (ACTIVATION,)
    weight_formats = ("dense",)
    state_inputs = (H0,)  # the Q0.15 state: kept across calls by the C model and the HLS top, as the lstm's

    def check(self, op, ins, out):
        a, x = op.a, ins[X]
        if len(x.shape) != 3:
            return f"input must be 3-D [batch, time, in], got {list(x.shape)}"
        batch, steps, n_in = x.shape
        n = ins[W_IN].shape[0] if len(ins[W_IN].shape) == 2 else -1
        for k in range(3):
            if ins[W_IN + k].shape != (n, n_in):
                return f"{GATES[k]} gate input weights {list(ins[W_IN + k].shape)} should be [{n}, {n_in}]"
            if ins[W_REC + k].shape != (n, n):
                return f"{GATES[k]} gate recurrent weights {list(ins[W_REC + k].shape)} should be [{n}, {n}]"
            if ins[B_IN + k].shape != (n,):
                return f"{GATES[k]} gate bias {list(ins[B_IN + k].shape)} should be [{n}]"
        if ins[B_REC_NEW].shape != (n,):
            return f"new gate recurrent bias {list(ins[B_REC_NEW].shape)} should be [{n}]"
        if ins[H0].dtype != "int16" or ins[H0].size != batch * n:
            return f"the state should be int16 with {batch * n} values"
        if out.shape != (batch, steps, n):
            return f"output shape {list(out.shape)} should be {[batch, steps, n]}"
        if any(len(v) != 3 for v in (a.input_multiplier, a.input_shift, a.recurrent_multiplier, a.recurrent_shift)):
            return "the gate multipliers and shifts need one value per gate (3)"
        return None

    def kernel_params(self, graph, op):
        """The C kernel's constants: sizes, per-gate multipliers, the weights stacked gate after gate."""
        a = op.a
        ins = [graph.tensors[n] for n in op.inputs]
        batch, steps, n_in = ins[X].shape

        def stack(first: int, dtype) -> np.ndarray:
            return np.concatenate([np.asarray(ins[first + k].data, dtype).reshape(-1) for k in range(3)])

        return {
            "steps": steps, "batch": batch, "n_in": n_in, "n_hidden": ins[W_IN].shape[0],
            "input_zp": a.input_zp, "state_zp": a.state_zp,
            "in_mult": list(a.input_multiplier), "in_shift": list(a.input_shift),
            "rec_mult": list(a.recurrent_multiplier), "rec_shift": list(a.recurrent_shift),
            "out_mult": a.output_multiplier, "out_shift": a.output_shift,
            "w_in": stack(W_IN, np.int8), "w_rec": stack(W_REC, np.int8), "bias": stack(B_IN, np.int32),
            "rec_bias": np.asarray(ins[B_REC_NEW].data, np.int32).reshape(-1),
        }

    def reference(self, op, args, out_t):
        a = op.a
        x = np.asarray(args[X], dtype=np.int64)
        w_in = [np.asarray(args[W_IN + k], dtype=np.int64) for k in range(3)]
        w_rec = [np.asarray(args[W_REC + k], dtype=np.int64) for k in range(3)]
        b_in = [np.asarray(args[B_IN + k], dtype=np.int64) for k in range(3)]
        b_rec_new = np.asarray(args[B_REC_NEW], dtype=np.int64)
        h = np.asarray(args[H0], dtype=np.int64).reshape(x.shape[0], -1)
        outs = []
        for t in range(x.shape[1]):
            xt, ht = x[:, t] - a.input_zp, self._output(a, h) - a.state_zp
            pre = [clamp16(mbqm(xt @ w_in[k].T + b_in[k], a.input_multiplier[k], a.input_shift[k])) for k in range(3)]
            rec = [mbqm(ht @ w_rec[k].T + (b_rec_new if k == 2 else 0), a.recurrent_multiplier[k],
                        a.recurrent_shift[k]) for k in range(3)]
            r, z = (gemmlowp_logistic16(clamp16(pre[k] + rec[k]), 3) for k in range(2))
            gated = clamp16(rounding_divide_by_pot(r * clamp16(rec[2]), 15))  # Q0.15 x Q3.12 -> Q3.12
            n = gemmlowp_tanh16(clamp16(pre[2] + gated), 3)
            h = clamp16(rounding_divide_by_pot(z * h + (ONE_Q15 - z) * n, 15))
            outs.append(self._output(a, h))
        return np.stack(outs, axis=1).astype(out_t.dtype)

    @staticmethod
    def _output(a, h) -> np.ndarray:
        return np.clip(mbqm(h, a.output_multiplier, a.output_shift) + a.state_zp, -128, 127)
