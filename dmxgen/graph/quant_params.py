"""Requantization constants from float scales, as TFLite's Prepare steps derive them.

Both frontends call these: the TFLite reader with the scales of a .tflite,
the PyTorch side (compress/intops.py, for the fake-quantized forward and the
exporter alike) with the scales its observers chose. Scales are taken as
float32, as a .tflite stores them, and widened to double where TFLite does.
Rounding is fixedpoint.py's.
"""
from __future__ import annotations

import numpy as np

from ..errors import DmxError
from .fixedpoint import quantize_multiplier, quantize_multiplier_array, round_half_away

ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD: inputs are widened by 2**20 before rescaling
ADD_LEFT_SHIFT_INT16 = 15  # its int16 (16x8) general path: 65535 << 15 still fits int32
# Fused activations as clamp bounds in real units (None: no bound on that side).
ACTIVATIONS: dict[str, tuple[float | None, float | None]] = {
    "NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _f32(x) -> float:
    return float(np.float32(x))


def conv_multipliers(s_in: float, w_scales, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) of conv, depthwise and FC: s_in * s_w / s_out in double
    (PopulateConvolutionQuantizationParams; LiteRT and TFLM do FULLY_CONNECTED the same way)."""
    reals = [_f32(s_in) * _f32(s) / _f32(s_out) for s in np.ravel(w_scales)]
    return quantize_multiplier_array(np.array(reals, dtype=np.float64))


def pot_multipliers(s_in: float, w_scales, s_out: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power-of-two requantization (PSA-Compress's FPGA designs): per output channel the shift
    S = round(log2(s_in * s_w / s_out)), and the weight scale moved to s_out * 2**S / s_in so that
    the real multiplier is exactly 2**S. Returns (weight scales, multipliers, shifts): the
    multiplier 2**30 with shift S + 1 and single rounding is the rounded shift
    (acc + 2**(-S-1)) >> -S, so no 32-bit multiply is needed."""
    ws = np.asarray(np.ravel(w_scales), dtype=np.float64)
    exponent = np.rint(np.log2(float(s_in) * ws / float(s_out))).astype(np.int64)
    scales = (float(s_out) * np.exp2(exponent.astype(np.float64)) / float(s_in)).astype(np.float32)
    return scales, np.full(ws.size, 1 << 30, np.int64), exponent + 1


def add_params(sa: float, sb: float, so: float, left_shift: int = ADD_LEFT_SHIFT) -> dict:
    """TFLite's int8 ADD: left shift 20 (int16's general path: 15), each input rescaled to twice
    the larger input scale, the quotients in double (LiteRT's add.cc and TFLM's add_common.cc)."""
    sa, sb, so = _f32(sa), _f32(sb), _f32(so)
    twice_max = 2 * max(sa, sb)
    m1, s1 = quantize_multiplier(sa / twice_max)
    m2, s2 = quantize_multiplier(sb / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return {"left_shift": left_shift, "input1_multiplier": m1, "input1_shift": s1,
            "input2_multiplier": m2, "input2_shift": s2, "output_multiplier": mo, "output_shift": sho}


def sub_params(sa: float, sb: float, so: float, left_shift: int = ADD_LEFT_SHIFT) -> dict:
    """TFLite's int8 SUB (PrepareGeneralSubOp): ADD's left shift 20 and common grid of twice the
    larger input scale, the quotients in double (LiteRT, and the TFLite Micro the goldens run,
    though its sub_common.cc source reads float32 quotients: tests/ops/test_sub.py has scales
    where the two differ); the kernel subtracts the inputs rescaled (and rounded) each on its own.

    An output multiplier of 1 or more is refused: TFLite Micro aborts on it, LiteRT aborts on 1
    and above 1 shifts right by a negative amount (undefined behaviour).
    """
    sa, sb, so = _f32(sa), _f32(sb), _f32(so)
    twice_max = 2 * max(sa, sb)
    real_out = twice_max / _f32((1 << left_shift) * so)  # int * float in C++: a float, exact
    if not real_out < 1.0:
        raise DmxError(f"SUB output scale {so:g} is too small for input scales {sa:g} and {sb:g}: the output "
                       f"multiplier {real_out:g} is not below 1, which TFLite's SUB cannot compute")
    (m1, s1), (m2, s2), (mo, sho) = (quantize_multiplier(r) for r in (sa / twice_max, sb / twice_max, real_out))
    return {"left_shift": left_shift, "input1_multiplier": m1, "input1_shift": s1,
            "input2_multiplier": m2, "input2_shift": s2, "output_multiplier": mo, "output_shift": sho}


def checked_log2(x: float) -> int | None:
    """TFLite's CheckedLog2 in float32: the rounded log2 of x when x is within 1e-3 (in log2) of a
    power of two, else None."""
    f = np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        v = f(np.log(f(x))) * (f(1) / f(np.log(f(2))))
    if not np.isfinite(v):
        return None
    r = f(round_half_away(float(v)))
    return int(r) if abs(f(v - r)) < f(1e-3) else None


def pot_int16_shifts(sa: float, sb: float, so: float, opname: str) -> dict | None:
    """LiteRT's int16 ADD / SUB with pot_scale_int16 and power-of-two scales (PrepareInt16SubOpPOT,
    add.cc): the input shifts log2(s_in) - log2(s_out), one of them 0, both <= 0. None when a scale
    is not a power of two (then LiteRT takes the general path)."""
    logs = [checked_log2(x) for x in (sa, sb, so)]
    if any(v is None for v in logs):
        return None
    s1, s2 = logs[0] - logs[2], logs[1] - logs[2]
    if not (s1 == 0 or s2 == 0) or s1 > 0 or s2 > 0:
        raise DmxError(f"int16 {opname} with power-of-two scales {sa:g}, {sb:g} -> {so:g}: LiteRT needs the "
                       "output scale equal to one input's and not above the other's (set pot_scale_int16 false "
                       "for the general path)")
    if min(s1, s2) < -15:  # gemmlowp's RoundingDivideByPOT on int16 codes: its mask wraps beyond 15
        raise DmxError(f"int16 {opname} with power-of-two scales {sa:g}, {sb:g} -> {so:g}: a right shift of "
                       f"{-min(s1, s2)} exceeds the 15 of LiteRT's int16 power-of-two path")
    return {"input1_shift": s1, "input2_shift": s2}


def mul_params(sa: float, sb: float, so: float, float32_product: bool = False) -> dict:
    """int8 MUL: (multiplier, shift) of sa * sb / so.

    LiteRT's mul.cc evaluates it in float32 (`float32_product`), TFLite Micro's
    mul_common.cc in double (the default, which the PyTorch side uses too); the
    two differ for some scales.
    """
    if float32_product:
        with np.errstate(over="ignore"):  # inf, as in C; quantize_multiplier refuses it
            real = float(np.float32(np.float32(sa) * np.float32(sb)) / np.float32(so))
    else:
        real = _f32(sa) * _f32(sb) / _f32(so)
    mo, sho = quantize_multiplier(real)
    return {"output_multiplier": mo, "output_shift": sho}


def requant_params(s_in: float, s_out: float) -> tuple[int, int]:
    """(multiplier, shift) of s_in / s_out: int8 -> int8 QUANTIZE, MEAN's rescale, concat inputs."""
    return quantize_multiplier(_f32(s_in) / _f32(s_out))


def clamp_range(lo: float | None, hi: float | None, scale: float, zero_point: int,
                qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """Clamp bounds in real units -> on the output grid (CalculateActivationRangeQuantized:
    f / scale in float32, rounded half away from zero, kept inside [qmin, qmax])."""
    def q(f: float) -> int:
        return zero_point + round_half_away(float(np.float32(f) / np.float32(scale)))

    return (qmin if lo is None else max(qmin, q(lo))), (qmax if hi is None else min(qmax, q(hi)))


def activation_range(activation: str | None, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """Clamp bounds of a fused activation (NONE, RELU, RELU6, RELU_N1_TO_1) in the quantized domain."""
    name = "NONE" if activation in (None, "none") else activation
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported fused activation {activation}")
    return clamp_range(*ACTIVATIONS[name], scale, zero_point, qmin, qmax)


def activation_name(lo: float | None, hi: float | None) -> str:
    """The fused activation a clamp is, for reports; CLAMP when it is none of TFLite's."""
    return next((name for name, bounds in ACTIVATIONS.items() if bounds == (lo, hi)), "CLAMP")


def softmax_gemmlowp_params(beta: float, input_scale: float) -> dict:
    """TFLite Micro's integer softmax constants (PreprocessSoftmaxScaling, 5 integer bits):
    the attrs of a softmax_gemmlowp op, and of the early-exit softmax policy (graph/exit_policy.py)."""
    import math

    integer_bits = 5
    real = min(beta * input_scale * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real, max_shift=31)  # QuantizeMultiplierGreaterThanOne allows 31
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return {"input_multiplier": mult, "input_left_shift": shift, "diff_min": -radius}


def batch_matmul_params(s_lhs: float, s_rhs: float, s_out: float) -> dict:
    """int8 BATCH_MATMUL: (multiplier, shift) of s_lhs * s_rhs / s_out in double
    (GetQuantizedConvolutionMultipler, in LiteRT and TFLite Micro alike; MUL's TFLM formula)."""
    return mul_params(s_lhs, s_rhs, s_out)


def prelu_params(s_in: float, s_alpha: float, s_out: float, float32: bool = False) -> dict:
    """int8 PRELU: (multiplier, shift) of s_in / s_out (x >= 0) and of s_in * s_alpha / s_out (x < 0).
    LiteRT's activations.cc PreluPrepare computes both in float32 (`float32`), TFLite Micro's
    prelu_common.cc in double (the default, which the PyTorch side uses too)."""
    if float32:
        with np.errstate(over="ignore"):  # inf, as in C; quantize_multiplier refuses it
            m1, s1 = quantize_multiplier(float(np.float32(s_in) / np.float32(s_out)))
    else:
        m1, s1 = requant_params(s_in, s_out)
    alpha = mul_params(s_in, s_alpha, s_out, float32_product=float32)
    return {"multiplier_identity": m1, "shift_identity": s1,
            "multiplier_alpha": alpha["output_multiplier"], "shift_alpha": alpha["output_shift"]}


def leaky_relu_params(s_in: float, alpha: float, s_out: float, float32: bool = True) -> dict:
    """LEAKY_RELU as a prelu of alpha code 1: s_in / s_out and s_in * alpha / s_out. LiteRT's LeakyReluPrepare
    multiplies and divides the float scales and alpha in float32 (`float32`); TFLite Micro's, as the pip
    interpreter runs it, in double (tests/ops/test_prelu.py finds int16 scales where the two differ)."""
    s_in, alpha, s_out = float(np.float32(s_in)), float(np.float32(alpha)), float(np.float32(s_out))
    with np.errstate(over="ignore"):  # inf, as in C; quantize_multiplier refuses it
        if float32:
            identity = float(np.float32(s_in) / np.float32(s_out))
            real = float(np.float32(np.float32(s_in) * np.float32(alpha)) / np.float32(s_out))
        else:
            identity, real = s_in / s_out, s_in * alpha / s_out
    m1, s1 = quantize_multiplier(identity)
    m2, s2 = quantize_multiplier(real)
    return {"multiplier_identity": m1, "shift_identity": s1, "multiplier_alpha": m2, "shift_alpha": s2}


LSTM_Q3_12, LSTM_Q0_15 = 2.0**-12, 2.0**-15  # the integer LSTM's gate pre-activations and activations


def lstm_multipliers(pre_in, pre_rec, hidden_real: float) -> dict:
    """The `lstm` op's per-gate input and recurrent (multiplier, shift) and the hidden state's, from reals."""
    mult_in = [quantize_multiplier(r) for r in pre_in]
    mult_rec = [quantize_multiplier(r) for r in pre_rec]
    hm, hs = quantize_multiplier(hidden_real)
    return {"input_multiplier": [m for m, _ in mult_in], "input_shift": [s for _, s in mult_in],
            "recurrent_multiplier": [m for m, _ in mult_rec], "recurrent_shift": [s for _, s in mult_rec],
            "hidden_multiplier": hm, "hidden_shift": hs}


def litert_lstm_multipliers(s_x: float, s_h: float, in_scales, rec_scales, hidden_scale: float,
                            gate_scales=(LSTM_Q3_12,) * 4) -> dict:
    """LiteRT's 8x8_16 LSTM constants (PopulateQuantizedLstmParams8x8_16), all in float32: per gate
    s_w * s_x / s_gate and s_w * s_h / s_gate (s_gate Q3.12, or with layer norm the gate's intermediate
    scale), and 2^-15 / s_hidden * 2^-15. The TFLite frontend (frontends/tflite_lstm.py) and the PyTorch
    side (compress/recurrent.py) both derive the op's attrs here."""
    f = np.float32
    pre_in = [float(f(w) * f(s_x) / f(s)) for w, s in zip(in_scales, gate_scales)]
    pre_rec = [float(f(w) * f(s_h) / f(s)) for w, s in zip(rec_scales, gate_scales)]
    hidden_real = float(f(LSTM_Q0_15 / float(f(hidden_scale)) * LSTM_Q0_15))
    return lstm_multipliers(pre_in, pre_rec, hidden_real)


def lstm_cell_shift(lo: float, hi: float) -> int:
    """log2 of the int16 cell state's scale for a calibrated range, as TFLite's quantizer picks it
    (GetPowerOfTwoScale: the least power of two 2^p >= max|range|, p in 0..10; scale 2^p / 32768)."""
    bound = max(abs(float(lo)), abs(float(hi)))
    p = 0
    for _ in range(10):
        if 2.0**p < np.float32(bound):
            p += 1
    return p - 15
