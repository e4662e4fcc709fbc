"""lstm: TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 cell state (8x8_16).

The reference follows LiteRT's LstmStepInteger8x8_16 (semantics "tflite") or TFLite Micro's
LstmStep (semantics "tflm") to the bit; the two differ in the gate activations, the rounding of
the cell products and how multipliers are derived (docs/lstm.md). No peephole, no CIFG; projection and
layer norm with LiteRT only (TFLite Micro has neither). Each call starts from the state
tensors' values: TFLite resets its variable tensors to them (zero point, zero) when it allocates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..graph.fixedpoint import rounding_divide_by_pot
from . import register
from ._lstm_int import (clamp16, gemmlowp_logistic16, gemmlowp_tanh16, layer_norm16, tflm_logistic16,
                        tflm_tanh_for_scale, wrap16)
from ._spec import ACTIVATION, BIAS, WEIGHTS, Ints, OpSpec, Pair

GATES = ("input", "forget", "cell", "output")  # the order of every per-gate attribute and input
# Inputs of the op: x, the input and recurrent weights per gate, the gate biases, the two states,
# then (optional) the projection weights and bias, and the four gates' layer-norm coefficients.
X, W_IN, W_REC, B_GATE, H0, C0, W_PROJ, B_PROJ, LAYER_NORM = 0, 1, 5, 9, 13, 14, 15, 16, 17


@dataclass(frozen=True)
class LstmAttrs:
    layout: Literal["time_major", "batch_major"]  # input [time, batch, in] or [batch, time, in]
    semantics: Literal["tflite", "tflm"]  # LiteRT's kernel or TFLite Micro's
    input_zp: int
    state_zp: int  # the hidden (output) state's zero point, also the output's
    input_multiplier: Ints  # per gate: input matmul -> gate pre-activation (Q3.12)
    input_shift: Ints
    recurrent_multiplier: Ints  # per gate: recurrent matmul -> Q3.12
    recurrent_shift: Ints
    hidden_multiplier: int  # tanh(cell) * output gate (Q0.15 x Q0.15) -> the hidden state
    hidden_shift: int
    hidden_zp: int  # LiteRT: the zero point of the hidden intermediate (= state_zp without projection)
    cell_shift: int  # the cell state's scale is 2**cell_shift
    cell_clip: int = 0  # quantized |cell| bound, 0: none
    # TFLite Micro only: forget * cell and input * cell gate requantized to the cell scale
    forget_mul: Pair = (0, 0)
    update_mul: Pair = (0, 0)
    proj_multiplier: int = 0  # LiteRT only, with projection weights
    proj_shift: int = 0
    proj_clip: int = 0
    # LiteRT only, with layer-norm coefficients: per gate, the coefficients' scale and variance guard
    layer_norm_multiplier: Ints = ()
    layer_norm_shift: Ints = ()
    variance_guard: Ints = ()


@register
class Lstm(OpSpec):
    kind = "lstm"
    summary = "int8 sequence LSTM with int16 cell state (TFLite UNIDIRECTIONAL_SEQUENCE_LSTM)"
    Attrs = LstmAttrs
    targets = ("c", "hls", "tflite", "torch")  # torch: nn.LSTM (compress/recurrent.py)
    inputs = ((ACTIVATION,) + (WEIGHTS,) * 8 + (BIAS,) * 4 + (ACTIVATION, ACTIVATION) + (WEIGHTS, BIAS)
              + (BIAS,) * 4)  # layer-norm coefficients: dense int16 constants
    min_inputs = 15
    weight_formats = ("dense",)
    state_inputs = (H0, C0)  # the output and cell states: kept across calls by the C model and HLS top (docs/lstm.md)

    def check(self, op, ins, out):
        a = op.a
        x = ins[X]
        if len(x.shape) != 3:
            return f"input must be 3-D, got {list(x.shape)}"
        steps, batch = (x.shape[0], x.shape[1]) if a.layout == "time_major" else (x.shape[1], x.shape[0])
        n_cell = ins[W_IN].shape[0] if len(ins[W_IN].shape) == 2 else -1
        projected = len(ins) > W_PROJ and ins[W_PROJ] is not None
        n_out = ins[W_PROJ].shape[0] if projected else n_cell
        for k in range(4):
            if ins[W_IN + k].shape != (n_cell, x.shape[2]):
                return f"{GATES[k]} gate input weights {list(ins[W_IN + k].shape)} should be [{n_cell}, {x.shape[2]}]"
            if ins[W_REC + k].shape != (n_cell, n_out):
                return f"{GATES[k]} gate recurrent weights {list(ins[W_REC + k].shape)} should be [{n_cell}, {n_out}]"
            if ins[B_GATE + k].shape != (n_cell,):
                return f"{GATES[k]} gate bias {list(ins[B_GATE + k].shape)} should be [{n_cell}]"
        if projected and ins[W_PROJ].shape != (n_out, n_cell):
            return f"projection weights {list(ins[W_PROJ].shape)} should be [{n_out}, {n_cell}]"
        if ins[H0].size != batch * n_out or ins[C0].size != batch * n_cell:
            return f"states of {ins[H0].size} and {ins[C0].size} values do not fit batch {batch}"
        want = (steps, batch, n_out) if a.layout == "time_major" else (batch, steps, n_out)
        if out.shape != want:
            return f"output shape {list(out.shape)} should be {list(want)}"
        if any(len(v) != 4 for v in (a.input_multiplier, a.input_shift, a.recurrent_multiplier, a.recurrent_shift)):
            return "the gate multipliers and shifts need one value per gate (4)"
        if projected and a.semantics == "tflm":
            return "TFLite Micro's LSTM has no projection"
        if len(ins) > LAYER_NORM:
            if a.semantics == "tflm" or len(ins) != LAYER_NORM + 4 or any(t is None for t in ins[LAYER_NORM:]):
                return "layer norm needs LiteRT's kernel and the coefficients of all four gates"
            if any(t.shape != (n_cell,) for t in ins[LAYER_NORM:]):
                return f"layer-norm coefficients should be [{n_cell}]"
            if any(len(v) != 4 for v in (a.layer_norm_multiplier, a.layer_norm_shift, a.variance_guard)):
                return "layer norm needs one multiplier, shift and variance guard per gate (4)"
        return None

    def kernel_params(self, graph, op):
        """The kernel's constants: sizes, per-gate multipliers, the weights stacked gate after gate."""
        a = op.a
        ins = [graph.tensors[n] if n else None for n in op.inputs]
        steps, batch, n_in = ins[X].shape if a.layout == "time_major" else (ins[X].shape[1], ins[X].shape[0],
                                                                            ins[X].shape[2])
        n_cell = ins[W_IN].shape[0]
        proj = ins[W_PROJ] if len(ins) > W_PROJ else None
        proj_bias = ins[B_PROJ] if len(ins) > B_PROJ else None
        norm = ins[LAYER_NORM:] if len(ins) > LAYER_NORM else []

        def stack(first: int, dtype) -> np.ndarray:
            return np.concatenate([np.asarray(ins[first + k].data, dtype).reshape(-1) for k in range(4)])

        def four(v) -> list[int]:  # one value per gate; zeros for the layer-norm ones without layer norm
            return [int(x) for x in v] if len(v) else [0] * 4

        return {
            "steps": steps, "batch": batch, "n_in": n_in, "n_cell": n_cell, "n_out": ins[W_REC].shape[1],
            "time_major": a.layout == "time_major", "tflm": a.semantics == "tflm",
            "input_zp": a.input_zp, "state_zp": a.state_zp, "hidden_zp": a.hidden_zp,
            "in_mult": four(a.input_multiplier), "in_shift": four(a.input_shift),
            "rec_mult": four(a.recurrent_multiplier), "rec_shift": four(a.recurrent_shift),
            "hidden_mult": a.hidden_multiplier, "hidden_shift": a.hidden_shift,
            "cell_shift": a.cell_shift, "cell_clip": a.cell_clip,
            "forget_mult": a.forget_mul[0], "forget_shift": a.forget_mul[1],
            "update_mult": a.update_mul[0], "update_shift": a.update_mul[1],
            "projected": proj is not None, "proj_has_bias": proj_bias is not None,
            "proj_mult": a.proj_multiplier, "proj_shift": a.proj_shift, "proj_clip": a.proj_clip,
            "layer_norm": bool(norm), "ln_mult": four(a.layer_norm_multiplier), "ln_shift": four(a.layer_norm_shift),
            "ln_guard": four(a.variance_guard),
            "w_in": stack(W_IN, np.int8), "w_rec": stack(W_REC, np.int8), "bias": stack(B_GATE, np.int32),
            "w_proj": np.asarray(proj.data, np.int8).reshape(-1) if proj is not None else np.zeros(0, np.int8),
            "proj_bias": (np.asarray(proj_bias.data, np.int32).reshape(-1) if proj_bias is not None
                          else np.zeros(0, np.int32)),
            "ln_w": (np.concatenate([np.asarray(t.data, np.int16).reshape(-1) for t in norm]) if norm
                     else np.zeros(0, np.int16)),
        }

    def reference(self, op, args, out_t):
        a = op.a
        x = np.asarray(args[X], dtype=np.int64)
        seq = x if a.layout == "time_major" else x.transpose(1, 0, 2)  # [time, batch, in]
        w_in = [np.asarray(args[W_IN + k], dtype=np.int64) for k in range(4)]
        w_rec = [np.asarray(args[W_REC + k], dtype=np.int64) for k in range(4)]
        bias = [np.asarray(args[B_GATE + k], dtype=np.int64) for k in range(4)]
        proj = args[W_PROJ] if len(args) > W_PROJ else None
        proj_bias = args[B_PROJ] if len(args) > B_PROJ else None
        norm = [np.asarray(args[LAYER_NORM + k], np.int64) for k in range(4)] if len(args) > LAYER_NORM else None
        n_cell = w_in[0].shape[0]
        batch = seq.shape[1]
        h = np.asarray(args[H0], dtype=np.int64).reshape(batch, -1)
        c = np.asarray(args[C0], dtype=np.int64).reshape(batch, n_cell)
        outs = []
        for xt in seq:
            i, f, g, o = (self._gate(a, k, xt, h, w_in[k], w_rec[k], bias[k], norm and norm[k]) for k in range(4))
            c = self._cell(a, c, i, f, g)
            h = self._hidden(a, c, o, proj, proj_bias)
            outs.append(h)
        y = np.stack(outs)  # [time, batch, out]
        y = y if a.layout == "time_major" else y.transpose(1, 0, 2)
        return y.astype(out_t.dtype)

    @staticmethod
    def _gate(a, k, xt, h, w_in, w_rec, bias, norm=None):
        """One gate's Q0.15 activation: both matmuls requantized to Q3.12 (with layer norm: to the gate's
        intermediate scale, then normalized, scaled by the coefficients, plus the bias), summed, sigmoid or tanh."""
        acc_in = (xt - a.input_zp) @ w_in.T + (0 if norm is not None else bias)
        acc_rec = (h - a.state_zp) @ w_rec.T
        pre_in = clamp16(mbqm(acc_in, a.input_multiplier[k], a.input_shift[k]))
        pre_rec = mbqm(acc_rec, a.recurrent_multiplier[k], a.recurrent_shift[k])
        if a.semantics == "tflm":  # two int16 FULLY_CONNECTED outputs, then a saturating add
            pre = clamp16(pre_in + clamp16(pre_rec))
            return tflm_tanh_for_scale(pre, -12) if GATES[k] == "cell" else tflm_logistic16(pre)
        pre = clamp16(pre_in + pre_rec)  # LiteRT accumulates the recurrent part into the int16 gate
        if norm is not None:
            pre = layer_norm16(pre, norm, bias, a.layer_norm_multiplier[k], a.layer_norm_shift[k],
                               a.variance_guard[k])
        return gemmlowp_tanh16(pre, 3) if GATES[k] == "cell" else gemmlowp_logistic16(pre, 3)

    @staticmethod
    def _cell(a, c, i, f, g):
        if a.semantics == "tflm":
            kept = clamp16(mbqm(f * c, *a.forget_mul))
            added = clamp16(mbqm(i * g, *a.update_mul))
        else:  # CwiseMul with a shift: one rounding, narrowed without saturation
            kept = wrap16(rounding_divide_by_pot(f * c, 15))
            added = wrap16(rounding_divide_by_pot(i * g, 30 + a.cell_shift))
        c = clamp16(kept + added)
        return np.clip(c, -a.cell_clip, a.cell_clip) if a.cell_clip > 0 else c

    @staticmethod
    def _hidden(a, c, o, proj, proj_bias):
        if a.semantics == "tflm":
            t = tflm_tanh_for_scale(c, a.cell_shift)
            return np.clip(mbqm(t * o, a.hidden_multiplier, a.hidden_shift) + a.state_zp, -128, 127)
        t = gemmlowp_tanh16(c, 15 + a.cell_shift)
        hidden = np.clip(mbqm(o * t, a.hidden_multiplier, a.hidden_shift) + a.hidden_zp, -128, 127)
        if proj is None:
            return hidden
        acc = (hidden - a.hidden_zp) @ np.asarray(proj, dtype=np.int64).T
        if proj_bias is not None:
            acc = acc + np.asarray(proj_bias, dtype=np.int64)
        y = np.clip(mbqm(acc, a.proj_multiplier, a.proj_shift) + a.state_zp, -128, 127)
        return np.clip(y, -a.proj_clip, a.proj_clip) if a.proj_clip > 0 else y
