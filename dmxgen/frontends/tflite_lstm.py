"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8 x int8 -> int16 cell) -> the `lstm` op's integer attrs.

The constants are derived as each golden's Prepare derives them: LiteRT
(unidirectional_sequence_lstm.cc PopulateQuantizedLstmParams8x8_16) in float32, with the
gate pre-activations on Q3.12 and the hidden state on the scale of intermediate 4; TFLite Micro
(lstm_eval_common.cc PrepareGateParametersInteger) in double, from the tensors alone. The
refusals name what is missing, one line each (docs/lstm.md).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DmxError
from ..graph.fixedpoint import quantize_multiplier
from ..graph.quant_params import litert_lstm_multipliers, lstm_multipliers
from ..ops.lstm import GATES

# the operator's inputs (tensorflow/lite/kernels/lstm_shared.h)
INPUT, IN_W, REC_W, PEEPHOLE, GATE_B, PROJ_W, PROJ_B, H_STATE, C_STATE, LAYER_NORM = (
    0, 1, 5, 9, 12, 16, 17, 18, 19, 20)
Q3_12, Q0_15 = 2.0**-12, 2.0**-15
_F32 = np.float32


def read_lstm(reader, op, ins: list[str], outs: list[str], options, activation_name: str):
    """(kind, attrs, inputs) of the `lstm` op for one operator; DmxError for what it cannot run."""
    g, tflm = reader.g, reader.semantics == "tflm"
    if len(ins) not in (20, 24):
        raise DmxError(f"has {len(ins)} inputs; UNIDIRECTIONAL_SEQUENCE_LSTM takes 20 or 24")
    x, out = g.tensors[ins[INPUT]], g.tensors[outs[0]]
    w_type = g.tensors[ins[IN_W + 3]].dtype if ins[IN_W + 3] else "?"
    if x.dtype == "float32":
        kind = "hybrid" if w_type in ("int8", "uint8") else "float"
        raise DmxError(f"{kind} LSTM ({x.dtype} activations, {w_type} weights) is not supported; "
                       "only the integer kernel (int8 activations and weights, int16 cell state)")
    if x.dtype != "int8" or out.dtype != "int8":
        raise DmxError(f"LSTM with {x.dtype} input and {out.dtype} output is not supported (int8 only)")
    _check_options(options, activation_name)
    if not ins[IN_W]:
        raise DmxError("CIFG LSTM (no input gate) is not supported")
    if any(ins[PEEPHOLE:PEEPHOLE + 3]):
        raise DmxError("peephole connections (cell_to_*_weights) are not supported")
    layer_norm = len(ins) == 24 and any(ins[LAYER_NORM:])
    if layer_norm and tflm:
        raise DmxError("layer-norm LSTM is not supported with --semantics tflm (TFLite Micro's LSTM has none)")
    if layer_norm and not all(ins[LAYER_NORM:]):
        raise DmxError("layer norm needs the coefficients of all four gates")
    if ins[PROJ_B] and not ins[PROJ_W]:
        raise DmxError("a projection bias without projection weights")
    projected = bool(ins[PROJ_W])
    if projected and tflm:
        raise DmxError("LSTM projection is not supported with --semantics tflm (TFLite Micro's LSTM has none)")
    if len(x.shape) != 3:
        raise DmxError(f"input {x.name!r} must be 3-D, got {list(x.shape)}")

    qx = reader._need_quant(x, "input")
    weights = [_weight(g, ins[IN_W + k], f"input-to-{GATES[k]}") for k in range(4)]
    recurrent = [_weight(g, ins[REC_W + k], f"recurrent-to-{GATES[k]}") for k in range(4)]
    n_cell = weights[0].shape[0]
    biases = [_bias(g, ins[GATE_B + k], f"{GATES[k]} gate", n_cell) for k in range(4)]
    h, c = (_state(g, ins[i], what, dtype) for i, what, dtype in
            ((H_STATE, "output state", "int8"), (C_STATE, "cell state", "int16")))
    qh, qc = reader._need_quant(h, "output state"), reader._need_quant(c, "cell state")
    cell_shift = _cell_shift(c, qc.s)
    # TFLite resets a variable tensor to its zero point (int8) or zero when it allocates
    h.data = np.full(h.shape, qh.zp, np.int8)
    c.data = np.zeros(c.shape, np.int16)

    if tflm:
        hidden_scale, hidden_zp = qh.s, qh.zp
        pre_in = [_f64(qx.s, w.quant.s) / Q3_12 for w in weights]
        pre_rec = [_f64(qh.s, w.quant.s) / Q3_12 for w in recurrent]
        mults = lstm_multipliers(pre_in, pre_rec, Q0_15 * Q0_15 / float(_F32(hidden_scale)))
        clip = _clip(options.CellClip(), qc.s, 32767, double=True)
    else:
        gate_scales = [_intermediate(reader, op, k)[0] if layer_norm else Q3_12 for k in range(4)]
        hidden_scale, hidden_zp = _intermediate(reader, op, 4)
        mults = litert_lstm_multipliers(qx.s, qh.s, [w.quant.s for w in weights], [w.quant.s for w in recurrent],
                                        hidden_scale, gate_scales)
        clip = _clip(options.CellClip(), qc.s, 32767, double=False)
    attrs = {"layout": "time_major" if options.TimeMajor() else "batch_major",
             "semantics": reader.semantics, "input_zp": qx.zp, "state_zp": qh.zp, **mults, "hidden_zp": hidden_zp,
             "cell_shift": cell_shift, "cell_clip": clip,
             "forget_mul": quantize_multiplier(Q0_15 * float(_F32(qc.s)) / float(_F32(qc.s))),
             "update_mul": quantize_multiplier(Q0_15 * Q0_15 / float(_F32(qc.s)))}
    op_ins = [ins[INPUT]] + ins[IN_W:IN_W + 4] + ins[REC_W:REC_W + 4] + ins[GATE_B:GATE_B + 4] + [h.name, c.name]
    if projected:
        w = _weight(g, ins[PROJ_W], "projection")
        qo = reader._need_quant(out, "output")
        pm, ps = quantize_multiplier(float(_F32(w.quant.s) * _F32(hidden_scale) / _F32(qh.s)))
        attrs.update(proj_multiplier=pm, proj_shift=ps, proj_clip=_clip(options.ProjClip(), qo.s, 127, double=False))
        op_ins += [ins[PROJ_W], _bias(g, ins[PROJ_B], "projection", w.shape[0]).name if ins[PROJ_B] else ""]
    if layer_norm:
        norms = [_coefficients(g, ins[LAYER_NORM + k], GATES[k], n_cell) for k in range(4)]
        mults = [quantize_multiplier(float(_F32(t.quant.s))) for t in norms]
        # 10000 * scale in float32, truncated: LiteRT's guard for a row of equal values
        attrs.update(layer_norm_multiplier=[m for m, _ in mults], layer_norm_shift=[s for _, s in mults],
                     variance_guard=[max(1, int(_F32(10000) * _F32(t.quant.s))) for t in norms])
        op_ins += ["", ""] * (not projected) + [t.name for t in norms]
    return "lstm", attrs, op_ins


def _check_options(o, activation_name: str) -> None:
    if activation_name != "TANH":
        raise DmxError(f"fused activation {activation_name} is not supported; the integer LSTM computes TANH")
    for what, v in (("cell_clip", o.CellClip()), ("proj_clip", o.ProjClip())):
        if not (math.isfinite(v) and v >= 0):  # LiteRT: TF_LITE_ENSURE(params->cell_clip >= 0)
            raise DmxError(f"{what} {v:g} must be a finite number >= 0 (0: no clipping)")
    if o.DiagonalRecurrentTensors():
        raise DmxError("diagonal recurrent weights (diagonal_recurrent_tensors) are not supported")
    # asymmetric_quantize_inputs only concerns the hybrid kernel: the integer one ignores it.


def _weight(g, name: str, what: str):
    w = g.tensors[name] if name else None
    if w is None:
        raise DmxError(f"the {what} weights are absent")
    if w.dtype != "int8" or w.data is None or len(w.shape) != 2:
        raise DmxError(f"{what} weights {w.name!r} ({w.dtype}{list(w.shape)}) must be a constant int8 matrix")
    if w.quant is None or w.quant.scale.size != 1 or w.quant.zp != 0:
        raise DmxError(f"{what} weights {w.name!r} must be quantized per tensor with zero point 0 "
                       "(the integer LSTM reads one scale)")
    return w


def _bias(g, name: str, what: str, n: int):
    b = g.tensors[name] if name else None
    if b is None or b.dtype != "int32" or b.data is None or b.shape != (n,):
        got = f"{b.dtype}{list(b.shape)}" if b is not None else "absent"
        raise DmxError(f"the {what} bias ({got}) must be a constant int32 vector of {n}")
    return b


def _state(g, name: str, what: str, dtype: str):
    t = g.tensors[name] if name else None
    if t is None:
        raise DmxError(f"the {what} tensor is absent")
    if t.dtype != dtype:
        raise DmxError(f"the {what} {t.name!r} is {t.dtype}; the integer LSTM keeps it in {dtype}")
    if t.data is not None:
        raise DmxError(f"the {what} {t.name!r} holds data; TFLite resets a state tensor when it allocates")
    if name in g.inputs:
        raise DmxError(f"the {what} {t.name!r} is a model input; dmxgen runs the LSTM from its reset state")
    return t


def _cell_shift(c, scale: float) -> int:
    """log2 of the cell state's scale (CheckedLog2), in the range ApplyTanh handles (0..6 integer bits)."""
    shift = round(math.log2(scale))
    if abs(math.log2(scale) - shift) > 1e-3:  # CheckedLog2's tolerance
        raise DmxError(f"the cell state {c.name!r} has scale {scale:g}; the integer LSTM needs a power of two")
    if not -15 <= shift <= -9:
        raise DmxError(f"the cell state {c.name!r} has scale 2^{shift}; the integer LSTM handles 2^-15 to 2^-9")
    return shift


def _intermediate(reader, op, k: int) -> tuple[float, int]:
    """The scale and zero point of intermediate k: 0-3 the gates' (read with layer norm only), 4 the
    hidden state before projection. LiteRT needs the five the converter writes for the 8x8_16 kernel."""
    what = "the hidden intermediate (intermediate 4)" if k == 4 else f"the {GATES[k]} gate's intermediate ({k})"
    if op.IntermediatesLength() != 5:
        raise DmxError(f"has {op.IntermediatesLength()} intermediate tensors; the integer LSTM needs the 5 "
                       "the TFLite converter writes (gate and hidden scales)")
    idx = int(op.Intermediates(k))
    if not 0 <= idx < reader.sg.TensorsLength():
        raise DmxError(f"intermediate tensor index {idx} does not exist")
    q = reader.sg.Tensors(idx).Quantization()
    if q is None or q.ScaleLength() < 1:
        raise DmxError(f"{what} has no quantization parameters")
    scale = float(q.ScaleAsNumpy()[0])
    zp = int(q.ZeroPointAsNumpy()[0]) if q.ZeroPointLength() else 0
    if not (math.isfinite(scale) and scale > 0) or not -128 <= zp <= 127:
        raise DmxError(f"{what} has scale {scale:g} and zero point {zp}")
    return scale, zp


def _coefficients(g, name: str, gate: str, n: int):
    t = g.tensors[name]
    if t.dtype != "int16" or t.data is None or t.shape != (n,) or t.quant is None or t.quant.scale.size != 1:
        raise DmxError(f"the {gate} gate's layer-norm coefficients {t.name!r} ({t.dtype}{list(t.shape)}) must be "
                       f"a constant int16 vector of {n} with one scale")
    return t


def _f64(a: float, b: float) -> float:
    return float(_F32(a)) * float(_F32(b))


def _clip(clip: float, scale: float, bound: int, double: bool) -> int:
    """The quantized clip: clip / scale clamped to the type and truncated (static_cast), 0 for none."""
    if clip <= 0:
        return 0
    q = float(_F32(clip)) / float(_F32(scale)) if double else float(_F32(clip) / _F32(scale))
    return int(min(max(q, -bound - 1), bound))
