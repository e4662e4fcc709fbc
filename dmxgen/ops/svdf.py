"""svdf: TFLite's SVDF operator, fully integer (int8 input and feature weights, int16 time weights and state).

One call is one time step: the activation state (int16 `[batch, n_filter * memory]`, each filter's
`memory` newest feature activations, oldest first) shifts left by one, the filters' activations of
the new input go into its last column, and each unit's output is the bias plus the time weights'
dot products with its `rank` filters' memories. The arithmetic is LiteRT's EvalIntegerSVDF
(reference/svdf.h) and TFLite Micro's EvalIntegerSvdfReference, which agree once the state's zero
point is 0 (LiteRT ignores it; dmxgen requires it); they differ only in how the multipliers are
derived (the frontend, docs/svdf.md). Neither applies the fused activation in the integer kernel.
The state is kept across calls by the C model and the HLS top, as TFLite keeps its variable tensor across invokes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph.fixedpoint import multiply_by_quantized_multiplier as mbqm
from . import register
from ._requant import saturate
from ._spec import ACTIVATION, BIAS, OpSpec

# Inputs of the op (TFLite's order): x, the feature weights, the time weights, the bias ("" when
# absent), the activation state.
X, W_FEATURE, W_TIME, B, STATE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SvdfAttrs:
    rank: int  # filters per unit: n_filter = rank * n_unit
    input_zp: int
    output_zp: int
    # (multiplier, shift) of s_x * s_wf / s_state (the feature activations -> the int16 state) and of
    # s_state * s_wt / s_out (the time dot products -> the output), QuantizeMultiplier's
    effective_scale_1_a: int
    effective_scale_1_b: int
    effective_scale_2_a: int
    effective_scale_2_b: int


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int32 two's-complement wrap: TFLite's int32 accumulators (the feature and time dot products, the sum)."""
    return ((np.asarray(x, np.int64) + 2**31) % 2**32) - 2**31


@register
class Svdf(OpSpec):
    kind = "svdf"
    summary = "int8 SVDF with int16 time weights and state, one time step per call (TFLite SVDF)"
    Attrs = SvdfAttrs
    targets = ("c", "hls", "tflite")
    # the weights are dense constants read in place (the `bias` role, as transpose_conv's), the state an
    # activation the C model keeps in its arena
    inputs = (ACTIVATION, BIAS, BIAS, BIAS, ACTIVATION)
    state_inputs = (STATE,)  # kept across calls by the C model and the HLS top (docs/svdf.md)

    def check(self, op, ins, out):
        a = op.a
        x, wf, wt, bias, state = ins
        if len(x.shape) != 2:
            return f"input must be 2-D [batch, input_size], got {list(x.shape)}"
        if len(wf.shape) != 2 or wf.shape[1] != x.shape[1]:
            return f"feature weights {list(wf.shape)} should be [num_filters, {x.shape[1]}]"
        n_filter = wf.shape[0]
        if a.rank < 1 or n_filter % a.rank:
            return f"rank {a.rank} does not divide the {n_filter} filters"
        n_unit = n_filter // a.rank
        if len(wt.shape) != 2 or wt.shape[0] != n_filter or wt.shape[1] < 1:
            return f"time weights {list(wt.shape)} should be [{n_filter}, memory_size]"
        if bias is not None and bias.shape != (n_unit,):
            return f"bias {list(bias.shape)} should be [{n_unit}]"
        if state.shape != (x.shape[0], n_filter * wt.shape[1]):
            return f"activation state {list(state.shape)} should be [{x.shape[0]}, {n_filter * wt.shape[1]}]"
        if out.shape != (x.shape[0], n_unit):
            return f"output shape {list(out.shape)} should be [{x.shape[0]}, {n_unit}]"
        return None

    def kernel_params(self, graph, op):
        """The kernel's constants: sizes, zero points, the two multipliers, the weights and bias."""
        a = op.a
        x, wf, wt = (graph.tensors[op.inputs[k]] for k in (X, W_FEATURE, W_TIME))
        bias = graph.tensors[op.inputs[B]] if op.inputs[B] else None
        return {
            "batch": x.shape[0], "n_input": x.shape[1], "n_filter": wf.shape[0], "n_memory": wt.shape[1],
            "rank": a.rank, "input_zp": a.input_zp, "output_zp": a.output_zp,
            "scale_1_mult": a.effective_scale_1_a, "scale_1_shift": a.effective_scale_1_b,
            "scale_2_mult": a.effective_scale_2_a, "scale_2_shift": a.effective_scale_2_b,
            "has_bias": int(bias is not None),
            "weights_feature": np.asarray(wf.data, np.int8).reshape(-1),
            "weights_time": np.asarray(wt.data, np.int16).reshape(-1),
            "bias": np.asarray(bias.data, np.int32).reshape(-1) if bias is not None else np.zeros(0, np.int32),
        }

    def reference(self, op, args, out_t):
        y, _ = self.step(op.a, args[X], args[W_FEATURE], args[W_TIME], args[B], args[STATE])
        return saturate(y, out_t.dtype)

    @staticmethod
    def step(a: SvdfAttrs, x, w_feature, w_time, bias, state) -> tuple[np.ndarray, np.ndarray]:
        """One invoke: (the int8 output [batch, n_unit], the new int16 state [batch, n_filter * memory])."""
        x = np.asarray(x, np.int64)
        wf, wt = np.asarray(w_feature, np.int64), np.asarray(w_time, np.int64)
        batch, (n_filter, n_memory) = x.shape[0], wt.shape
        memory = np.asarray(state, np.int64).reshape(batch, n_filter, n_memory)
        feature = mbqm(_wrap32((x - a.input_zp) @ wf.T), a.effective_scale_1_a, a.effective_scale_1_b)
        # the oldest activation leaves, the new one (saturated to int16, zero point 0) enters at the end
        memory = np.concatenate([memory[:, :, 1:], saturate(feature, "int16").astype(np.int64)[:, :, None]], axis=2)
        per_filter = (memory * wt[None]).sum(axis=2)  # [batch, n_filter]
        acc = per_filter.reshape(batch, n_filter // a.rank, a.rank).sum(axis=2)
        if bias is not None:
            acc = acc + np.asarray(bias, np.int64)
        y = saturate(mbqm(_wrap32(acc), a.effective_scale_2_a, a.effective_scale_2_b) + a.output_zp, "int8")
        return y, memory.reshape(batch, n_filter * n_memory).astype(np.int16)
