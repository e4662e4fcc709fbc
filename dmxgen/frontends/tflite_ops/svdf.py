"""SVDF (fully integer: int8 input and feature weights, int16 time weights and state) -> the `svdf` op.

The multipliers are derived as each golden computes them: LiteRT's (svdf.cc Prepare, ai-edge-litert
2.3) in float32, TFLite Micro's (svdf_common.cc PrepareSvdf, the tflite-micro wheel) in double; both
then QuantizeMultiplier. (The sources read the other way round: LiteRT's newer svdf.cc widens each
scale to double, and TFLM's writes a float32 expression. The states each runtime writes decide it:
tests/ops/test_svdf.py holds each golden to its own rounding.) Each semantics refuses what that
kernel cannot run: LiteRT's integer Eval runs only a fused RELU (which it does not apply), TFLite
Micro's Prepare refuses a missing bias or one off the state x time-weights scale.
The activation state is a variable tensor: TFLite resets it to zero when it allocates, and the
frontend gives it that value (docs/svdf.md).
"""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph.fixedpoint import quantize_multiplier
from ..tflite_registry import _ACTNAME, tflite_op

X, W_FEATURE, W_TIME, B, STATE = 0, 1, 2, 3, 4
_F32 = np.float32


# (1, 5): the bias (input 3) may be absent, so only the input is required by the registry's arity check
@tflite_op("SVDF", "svdf", inputs=(1, 5))
def op_svdf(reader, op, ins, outs):
    g, tflm = reader.g, reader.semantics == "tflm"
    if len(ins) != 5:
        raise DmxError(f"has {len(ins)} inputs; SVDF takes 5 (input, weights_feature, weights_time, bias, state)")
    absent = [what for k, what in ((1, "weights_feature"), (2, "weights_time"), (4, "activation state")) if not ins[k]]
    if absent:
        raise DmxError(f"the {absent[0]} tensor is absent")
    x, out = g.tensors[ins[X]], g.tensors[outs[0]]
    wf = g.tensors[ins[W_FEATURE]]
    if x.dtype == "float32":
        kind = "hybrid" if wf.dtype == "int8" else "float"
        raise DmxError(f"{kind} SVDF ({x.dtype} input, {wf.dtype} weights) is not supported; only the integer "
                       "kernel (int8 input and weights_feature, int16 weights_time and state)")
    if x.dtype != "int8" or out.dtype != "int8":
        raise DmxError(f"SVDF with {x.dtype} input and {out.dtype} output is not supported (int8 only)")
    o = reader.options(op, tflite.SVDFOptions, required=True)
    activation = _ACTNAME.get(o.FusedActivationFunction(), str(o.FusedActivationFunction()))
    if activation not in ("NONE", "RELU"):
        raise DmxError(f"fused activation {activation} is not supported; the integer SVDF takes NONE or RELU")
    if activation != "RELU" and not tflm:  # svdf.cc Eval: TF_LITE_ENSURE_EQ(params->activation, kTfLiteActRelu)
        raise DmxError(f"fused activation {activation}: LiteRT's integer SVDF runs only with RELU (load it "
                       "with --semantics tflm)")
    # asymmetric_quantize_inputs only concerns the hybrid kernel: the integer one ignores it.
    if len(x.shape) != 2:
        raise DmxError(f"input {x.name!r} must be 2-D [batch, input_size], got {list(x.shape)}")
    wf = _weights(g, ins[W_FEATURE], "weights_feature", "int8")
    wt = _weights(g, ins[W_TIME], "weights_time", "int16")
    n_filter, n_memory = wf.shape[0], wt.shape[1]
    rank = int(o.Rank())
    if rank < 1 or n_filter % rank:
        raise DmxError(f"rank {rank} must be at least 1 and divide the {n_filter} filters of {wf.name!r}")
    if wf.shape[1] != x.shape[1] or wt.shape[0] != n_filter:
        raise DmxError(f"weights_feature {list(wf.shape)} and weights_time {list(wt.shape)} should be "
                       f"[num_filters, {x.shape[1]}] and [num_filters, memory_size]")
    state = _state(g, ins[STATE], x.shape[0], n_filter * n_memory)
    if not ins[B] and tflm:  # PrepareSvdf reads bias->params.scale
        raise DmxError("TFLite Micro's integer SVDF needs a bias (its Prepare reads the bias scale)")
    bias = _bias(g, ins[B], n_filter // rank) if ins[B] else None
    qx, qo = reader._need_quant(x, "input"), reader._need_quant(out, "output")
    qs, qf, qt = state.quant, wf.quant, wt.quant
    if tflm:  # each float32 scale widened to double, then multiplied
        scale_1 = float(_F32(qx.s)) * float(_F32(qf.s)) / float(_F32(qs.s))
        scale_2 = float(_F32(qs.s)) * float(_F32(qt.s)) / float(_F32(qo.s))
        want = float(_F32(qs.s) * _F32(qt.s))
        if not abs(float(_F32(bias.quant.s)) - want) < 1e-5:
            raise DmxError(f"bias {bias.name!r} has scale {bias.quant.s:g}; TFLite Micro's SVDF needs the state "
                           f"scale times the weights_time scale ({want:g})")
    else:  # in float32
        scale_1 = float(_F32(qx.s) * _F32(qf.s) / _F32(qs.s))
        scale_2 = float(_F32(qs.s) * _F32(qt.s) / _F32(qo.s))
    m1, s1 = quantize_multiplier(scale_1)
    m2, s2 = quantize_multiplier(scale_2)
    state.data = np.zeros(state.shape, np.int16)  # TFLite resets a variable tensor to zero when it allocates
    attrs = {"rank": rank, "input_zp": qx.zp, "output_zp": qo.zp, "effective_scale_1_a": m1,
             "effective_scale_1_b": s1, "effective_scale_2_a": m2, "effective_scale_2_b": s2}
    return "svdf", attrs, [ins[X], wf.name, wt.name, bias.name if bias is not None else "", state.name]


def _weights(g, name: str, what: str, dtype: str):
    w = g.tensors[name]
    if w.dtype != dtype or w.data is None or len(w.shape) != 2:
        raise DmxError(f"{what} {w.name!r} ({w.dtype}{list(w.shape)}) must be a constant {dtype} matrix"
                       + (" (the int8 weights_time variant is not supported)" if what == "weights_time" else ""))
    if w.quant is None or w.quant.scale.size != 1 or w.quant.zp != 0:
        raise DmxError(f"{what} {w.name!r} must be quantized per tensor with zero point 0 (the integer SVDF "
                       "reads one scale)")
    return w


def _bias(g, name: str, n: int):
    b = g.tensors[name]
    if b.dtype != "int32" or b.data is None or b.shape != (n,):
        raise DmxError(f"bias {b.name!r} ({b.dtype}{list(b.shape)}) must be a constant int32 vector of {n}")
    if b.quant is None or b.quant.scale.size != 1:
        raise DmxError(f"bias {b.name!r} must be quantized per tensor")
    return b


def _state(g, name: str, batch: int, size: int):
    t = g.tensors[name]
    if t.dtype != "int16":
        raise DmxError(f"the activation state {t.name!r} is {t.dtype}; the integer SVDF keeps it in int16 "
                       "(the int8 state variant is not supported)")
    if t.shape != (batch, size):
        raise DmxError(f"the activation state {t.name!r} {list(t.shape)} should be [{batch}, {size}] "
                       "(batch, num_filters * memory_size)")
    if t.data is not None:
        raise DmxError(f"the activation state {t.name!r} holds data; TFLite resets a state tensor when it allocates")
    if name in g.inputs:
        raise DmxError(f"the activation state {t.name!r} is a model input; dmxgen keeps it inside the model")
    # its zero point is 0 (the reader refuses others for int16), as LiteRT's kernel assumes (TFLM subtracts it)
    if t.quant is None or t.quant.scale.size != 1:
        raise DmxError(f"the activation state {t.name!r} must be quantized per tensor")
    return t
