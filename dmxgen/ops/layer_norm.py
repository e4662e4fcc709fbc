"""layer_norm: LayerNorm over the last dim with a per-feature gamma and beta, integer only.

TFLite has no int8 LayerNorm builtin; the arithmetic follows the style of its integer LSTM
layer norm (int64 sums, an integer inverse square root, a per-feature weight and bias, one
final requantization) but is dmxgen's own, written down in docs/compression.md ("LayerNorm
arithmetic") with its error bound against float. Per row of D codes c:

    S = sum c, W = D * sum c^2 - S^2 (= D^2 var, exact), d = D c - S (= D (c - mean), exact)
    R = W * 2^16 + eps_term                          (eps_term = eps D^2 2^16 / s_in^2, rounded)
    p = how many times R may be multiplied by 4 staying below 2^62, sigma = isqrt(R 4^p)
    inv = round(2^62 / sigma), N = rdbpot(d * inv, 38 - p)        (the normalized value, Q16)
    out = clamp(rdbpot(N * gamma + beta, out_shift) + output_offset, act_min, act_max)

The input's zero point cancels in d and W, so the op needs none. `integer_layer_norm` is the
one implementation: the reference calls it on numpy int64 arrays and the PyTorch fake-quant
layer (compress/layernorm.py) on torch int64 tensors (so that torch.export traces it), which
is why it is written with operators both array types share and takes `where` as an argument.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DmxError
from ..graph import fixedpoint as fp
from . import register
from ._requant import clamp
from ._spec import Ints, OpSpec

NORM_BITS = 16  # N, the normalized value, is Q16
VAR_BITS = 16  # R holds W * 2^16, so that eps keeps 16 fraction bits
MAX_COLS = 32768  # keeps W * 2^16 below 2^60 (W < 2^14 D^2) and |d * inv| below 2^55
MAX_EPS_TERM = 2**61  # with W * 2^16 < 2^60, R stays below 2^62
GAMMA_MAX, BETA_MAX = 2**15 - 1, 2**31 - 1  # gamma int16, beta int32


@dataclass(frozen=True)
class LayerNormAttrs:
    gamma: Ints  # per feature: gamma / s_out in Q(out_shift - 16), int16
    beta: Ints  # per feature: beta / s_out in Q(out_shift), int32 (the accumulator's scale)
    eps_term: int  # round(eps * D^2 * 2^16 / s_in^2), 0 <= eps_term <= 2^61
    out_shift: int  # accumulator -> output code, 1..62
    output_offset: int
    act_min: int
    act_max: int


def rdbpot(x, e):
    """x / 2^e rounded half away from zero for int64 x and 0 <= e <= 62 (numpy or torch).

    fixedpoint.rounding_divide_by_pot's arithmetic (tests hold the two equal), in operators
    torch tensors share, as the fake-quant layer's frozen forward must trace through torch.export.
    """
    mask = ((e * 0 + 1) << e) - 1
    return (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0)))


def isqrt62(r, where):
    """floor(sqrt(r)) for 0 <= r < 2^62, elementwise: 31 digit-by-digit steps, exact."""
    res, rem, bit = r * 0, r, 1 << 60
    for _ in range(31):
        take = rem >= res + bit
        rem = where(take, rem - (res + bit), rem)
        res = where(take, (res >> 1) + bit, res >> 1)
        bit >>= 2
    return res


def integer_layer_norm(codes, gamma, beta, eps_term: int, out_shift: int, output_offset: int,
                       act_min: int, act_max: int, where=np.where):
    """The op on int64 codes [..., D] (numpy, or torch with where=torch.where); int64 codes out."""
    cols = codes.shape[-1]
    s = codes.sum(axis=-1, keepdims=True)
    w = cols * (codes * codes).sum(axis=-1, keepdims=True) - s * s
    d = cols * codes - s
    r = w * (1 << VAR_BITS) + eps_term
    p = r * 0
    for _ in range(30):  # R * 4^p in [2^60, 2^62); R = 0 (a constant row, eps_term 0) stays 0
        small = (r < (1 << 60)) & (r > 0)
        r, p = where(small, r << 2, r), p + small
    sigma = isqrt62(r, where)
    inv = where(sigma > 0, ((1 << 62) + (sigma >> 1)) // where(sigma > 0, sigma, 1), 0)
    norm = rdbpot(d * inv, 62 - VAR_BITS // 2 - NORM_BITS - p)
    acc = norm * gamma + beta
    return (rdbpot(acc, out_shift) + output_offset).clip(act_min, act_max)


def layer_norm_attrs(in_scale: float, out_scale: float, out_zp: int, gamma, beta, eps: float,
                     act_min: int, act_max: int, layer: str) -> dict:
    """The op's integer attrs from the float layer (frontend time, float64): gamma as int16 with
    the finest power-of-two scale both gamma and beta fit, beta on the accumulator's scale."""
    g = np.asarray(gamma, np.float64) / float(out_scale)
    b = np.asarray(beta, np.float64) / float(out_scale)
    cols = g.size
    eps_real = float(eps) * cols * cols * 2.0**VAR_BITS / float(in_scale) ** 2
    if not 0 <= eps_real <= MAX_EPS_TERM:  # also NaN and inf
        raise DmxError(f"layer {layer!r}: eps {eps:g} does not fit the input scale {in_scale:g} "
                       f"(eps * D^2 * 2^16 / scale^2 = {eps_real:g}, must be in 0..2^61)")
    eps_term = fp.round_half_away(eps_real)
    shift = 62
    for values, limit, extra in ((g, GAMMA_MAX, NORM_BITS), (b, BETA_MAX, 0)):
        top = float(np.abs(values).max()) if values.size else 0.0
        if top > 0:  # the largest shift whose rounded codes still fit
            k = math.floor(math.log2((limit + 0.5) / top)) + extra
            while k > 1 and fp.round_half_away(top * 2.0**(k - extra)) > limit:
                k -= 1
            shift = min(shift, k)
    if shift < 1:
        raise DmxError(f"layer {layer!r}: gamma and beta over the output scale (up to "
                       f"{float(np.abs(np.concatenate([g, b])).max()):g}) do not fit int16 and int32 codes")
    gq = fp.round_half_away_array(g * 2.0**(shift - NORM_BITS)).astype(np.int64)
    bq = fp.round_half_away_array(b * 2.0**shift).astype(np.int64)
    return {"gamma": tuple(int(v) for v in gq), "beta": tuple(int(v) for v in bq), "eps_term": int(eps_term),
            "out_shift": int(shift), "output_offset": int(out_zp), "act_min": int(act_min), "act_max": int(act_max)}


@register
class LayerNorm(OpSpec):
    kind = "layer_norm"
    summary = "LayerNorm over the last dim with per-feature gamma and beta (integer inverse sqrt)"
    Attrs = LayerNormAttrs
    targets = ("c", "hls", "torch")

    def check(self, op, ins, out):
        a, shape = op.a, ins[0].shape
        if out.shape != shape:
            return f"output shape {list(out.shape)} should be the input's {list(shape)}"
        cols = shape[-1] if shape else 0
        if not 1 <= cols <= MAX_COLS:
            return f"normalizes {cols} features; 1 to {MAX_COLS} are supported"
        if len(a.gamma) != cols or len(a.beta) != cols:
            return f"gamma has {len(a.gamma)} and beta {len(a.beta)} values, the last dim {cols}"
        if any(not -GAMMA_MAX - 1 <= v <= GAMMA_MAX for v in a.gamma):
            return "gamma does not fit int16"
        if any(not -BETA_MAX - 1 <= v <= BETA_MAX for v in a.beta):
            return "beta does not fit int32"
        if not 0 <= a.eps_term <= MAX_EPS_TERM:
            return f"eps_term {a.eps_term} is outside 0..2^61"
        if not 1 <= a.out_shift <= 62:
            return f"out_shift {a.out_shift} is outside 1..62"
        if not -128 <= a.act_min <= a.act_max <= 127 or not -128 <= a.output_offset <= 127:
            return "output offset and clamp bounds must be int8 codes"
        return None

    def reference(self, op, args, out_t):
        a = op.a
        x = args[0].astype(np.int64)
        y = integer_layer_norm(x, np.asarray(a.gamma, np.int64), np.asarray(a.beta, np.int64), a.eps_term,
                               a.out_shift, a.output_offset, a.act_min, a.act_max)
        return clamp(y, a.act_min, a.act_max, out_t.dtype)

    def kernel_params(self, graph, op):
        a, shape = op.a, graph.tensors[op.inputs[0]].shape
        cols = int(shape[-1])
        # eps_term (up to 2^61) as two int32 halves: the C parameter structs hold 32-bit integers
        return {"rows": int(np.prod(shape)) // cols, "cols": cols, "eps_hi": a.eps_term >> 31,
                "eps_lo": a.eps_term & (2**31 - 1), "out_shift": a.out_shift,
                "output_offset": a.output_offset, "act_min": a.act_min, "act_max": a.act_max,
                "gamma": np.asarray(a.gamma, np.int16), "beta": np.asarray(a.beta, np.int32)}
