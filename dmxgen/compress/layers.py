"""Fake-quantized layers: each one is exactly one op of the exported integer graph.

A layer's output quantizer is its output tensor's QuantParams; its input
quantizer is the producing layer's output quantizer, held as a plain
attribute (`in_quants`, not a submodule) so that it is not duplicated in the
state dict. In eval mode the fake-quantized values sit exactly on the integer
grid, so the exported graph computes the same numbers up to requantization
rounding (and exactly for lookup tables and pooling).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .aware import torch_nn
from .formats import NumFormat
from .intops import (add_codes, add_params, clamp_codes, conv_multipliers, mbqm, mbqm_single, mul_codes,
                     mul_params, pot_multipliers, requant_params, sub_params)
from .quant import ActQuant, fake_quant_weight, quantize_bias, round_half_away, ste, weight_scales
from .sparsity import DENSE, Sparseness, compute_mask


class _HasInputs(nn.Module):
    """Holds references to the quantizers of the layer's inputs without registering them."""

    def set_inputs(self, quants: list[ActQuant | None]) -> None:
        object.__setattr__(self, "in_quants", list(quants))

    @property
    def in_quant(self) -> ActQuant | None:
        return self.in_quants[0] if getattr(self, "in_quants", None) else None

    def _ready(self, *quants) -> bool:
        """True when every given quantizer has a range and none is calibrating."""
        return all(q is not None and q.calibrated and not q.calibrating for q in quants)


def apply_clamp(y: torch.Tensor, clamp: tuple[float | None, float | None]) -> torch.Tensor:
    lo, hi = clamp
    if lo is None and hi is None:
        return y
    return torch.clamp(y, min=lo, max=hi)


class QuantWeighted(_HasInputs):
    """Linear, Conv1d or Conv2d with a folded BatchNorm, a fused clamp (ReLU, ReLU6,
    Hardtanh), masked and fake-quantized weights, an int32-grid bias and an output quantizer.

    BatchNorm is folded with its running statistics in training too (its
    statistics are frozen; gamma and beta still learn), so that what trains is
    what is exported.
    """

    def __init__(self, layer: nn.Module, bn: nn.Module | None, clamp, wfmt: NumFormat, ofmt: NumFormat,
                 sparseness: Sparseness = DENSE, name: str = ""):
        super().__init__()
        self.layer = layer
        self.bn = bn
        self.clamp = clamp
        self.wfmt = wfmt
        self.sparseness = sparseness
        self.name = name
        self.out_quant = ActQuant(ofmt, label=name)
        self.register_buffer("weight_mask", torch.ones_like(layer.weight))
        # added to the float bias before it is quantized (compress/bias_correction.py); set by calibration
        self.register_buffer("bias_correction", torch.zeros(self.out_major(layer.weight).shape[0]))
        self.correct_bias = True  # config `bias_correction`
        self.bias_target: torch.Tensor | None = None  # the float mean output, during the correction run
        self.set_inputs([None])
        with torch.no_grad():
            w, _ = self.folded(masked=False)
            self.weight_mask.copy_(self.out_major(compute_mask(w, sparseness)))

    def extra_repr(self) -> str:
        act = "" if self.clamp == (None, None) else f", clamp={self.clamp}"
        return f"weight={self.wfmt.spelled()}, sparseness={self.sparseness.spelled()}{act}"

    @property
    def is_conv(self) -> bool:
        return isinstance(self.layer, nn.modules.conv._ConvNd)

    @property
    def channel_dim(self) -> int:
        """Where the output channels are: dim 1 of a conv's NC... output, the last dim of a Linear's."""
        return 1 if self.is_conv else -1

    def out_major(self, w: torch.Tensor) -> torch.Tensor:
        """The layer's weight (or mask) with output channels first: as stored, except for
        ConvTranspose2d's [Cin, Cout, ...] (compress/decoders.py); its own inverse."""
        return w

    def folded(self, masked: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) in float with the mask applied and the BatchNorm folded in."""
        w = self.out_major(self.layer.weight * self.weight_mask if masked else self.layer.weight)
        b = self.layer.bias if self.layer.bias is not None else torch.zeros(w.shape[0], device=w.device)
        if getattr(self, "pre_bn", None) is not None:  # a BatchNorm before the conv (compress/affine.py fold_into)
            from .affine import fold_ahead

            w, b = fold_ahead(w, b, self.pre_bn)
        if self.bn is not None and not hasattr(self.bn, "running_var"):  # an Affine behind a Linear
            from .affine import bn_scale_shift

            s, t = bn_scale_shift(self.bn)
            return w * s.reshape(-1, 1), b * s + t
        if self.bn is not None:
            bn = self.bn
            inv = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                inv = bn.weight * inv
            w = w * inv.reshape(-1, *([1] * (w.dim() - 1)))
            b = (b - bn.running_mean) * inv + (bn.bias if bn.bias is not None else 0.0)
        return w, b

    def quantized(self):
        """(w_hat, w_codes, w_scales, b_hat, b_codes or None): what forward uses and export stores."""
        w, b = self.folded()
        b = b + self.bias_correction
        w_hat, w_codes, w_scales = fake_quant_weight(w, self.wfmt, self.pot_scales(w))
        inq = self.in_quant
        if self._ready(inq):
            b_hat, b_codes = quantize_bias(b, inq.qparams()[0], w_scales.expand(w.shape[0]))
            return w_hat, w_codes, w_scales, b_hat, b_codes
        return w_hat, w_codes, w_scales, b, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:  # inference copy for torch.export: integer path only
            w_codes, b_codes, consts = self.frozen
            return self.out_quant.dequantize(self.integer_forward(self.in_quant.codes(x), w_codes, b_codes, consts))
        if self.bias_target is not None:
            self._correct_bias(x)
        w_hat, w_codes, w_scales, b_hat, b_codes = self.quantized()
        y = apply_clamp(self._compute(x, w_hat, b_hat), self.clamp)
        if b_codes is None or not self._ready(self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            codes = self.integer_forward(self.in_quant.codes(x), w_codes, b_codes, self.requant_consts(w_scales))
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))

    def begin_bias_correction(self) -> None:
        """Calibration starts: the old correction goes (compress/bias_correction.py sets a new one)."""
        self.bias_correction.zero_()

    def _correct_bias(self, x: torch.Tensor) -> None:
        """The correction run reaches this layer (its inputs already corrected upstream): move the
        bias by the float mean output per channel minus this layer's, before the clamp."""
        from .bias_correction import sample_means, shrunk_shift

        target, self.bias_target = self.bias_target, None
        with torch.no_grad():
            w_hat, _, _, b_hat, _ = self.quantized()
            mine = sample_means(self._compute(x, w_hat, b_hat), self.channel_dim)
            self.bias_correction.add_(shrunk_shift(target, mine).to(self.bias_correction.dtype))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a state dict saved before bias correction existed has none: no correction
        state_dict.setdefault(prefix + "bias_correction", torch.zeros_like(self.bias_correction))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    frozen = None

    def freeze(self) -> None:
        """Fix codes and requantization constants (needs calibrated quantizers); forward then runs
        only the integer path, which torch.export can trace."""
        with torch.no_grad():
            _, w_codes, w_scales, _, b_codes = self.quantized()
            self.frozen = (w_codes, b_codes, self.requant_consts(w_scales))

    def _compute(self, x, w, b):
        return self.layer._conv_forward(x, w, b) if self.is_conv else F.linear(x, w, b)

    pot = False  # power-of-two requantization (config `requantization: POWER_OF_TWO`)

    def pot_scales(self, w: torch.Tensor) -> torch.Tensor | None:
        """With `pot` and both grids calibrated: the weight scales moved so that s_in * s_w / s_out
        is a power of two per channel (graph/quant_params.py pot_multipliers); else None."""
        if not (self.pot and self._ready(self.in_quant, self.out_quant)):
            return None
        base = weight_scales(w, self.wfmt)
        scales, _, _ = pot_multipliers(self.in_quant.qparams()[0], base.detach().numpy(), self.out_quant.qparams()[0])
        return torch.from_numpy(scales)

    def multipliers(self, s_in: float, w_scales, s_out: float) -> tuple[np.ndarray, np.ndarray]:
        """(multiplier, shift) per output channel: TFLite's, or 2**30 with shift S + 1 under `pot`."""
        if self.pot:
            return pot_multipliers(s_in, w_scales, s_out)[1:]
        return conv_multipliers(s_in, w_scales, s_out)

    @property
    def rounding(self) -> str:
        """The requantization's rounding: single makes a power-of-two multiplier an exact rounded shift."""
        return "single" if self.pot else "double"

    def requant_consts(self, w_scales: torch.Tensor):
        """(multiplier, shift) int64 tensors shaped to broadcast over output channels, act_min, act_max."""
        s_in, _ = self.in_quant.qparams()
        s_out, zp_out = self.out_quant.qparams()
        cout = self.out_major(self.layer.weight).shape[0]
        mult, shift = self.multipliers(s_in, w_scales.detach().expand(cout).numpy(), s_out)
        shape = (1, cout, 1) if isinstance(self.layer, torch_nn.Conv1d) else (1, cout, 1, 1) if self.is_conv else (cout,)
        fmt = self.out_quant.fmt
        _, amin, amax = clamp_codes(self.clamp, s_out, zp_out, fmt.qmin, fmt.qmax)
        return (torch.from_numpy(mult.astype(np.int64)).reshape(shape),
                torch.from_numpy(shift.astype(np.int64)).reshape(shape), amin, amax)

    def integer_forward(self, codes_in, w_codes, b_codes, consts) -> torch.Tensor:
        """The exported op on integer codes: exact int32 accumulation, TFLite requantization, clamp."""
        mult, shift, amin, amax = consts
        _, zp_in = self.in_quant.qparams()
        _, zp_out = self.out_quant.qparams()
        # float64 sums of integers below 2**53 are exact
        acc = self._compute((codes_in - zp_in).to(torch.float64), w_codes.to(torch.float64), b_codes.to(torch.float64))
        q = (mbqm_single if self.pot else mbqm)(torch.round(acc).to(torch.int64), mult, shift) + zp_out
        return torch.clamp(q, amin, amax)


BINARY_OPS = ("add", "sub", "mul", "maximum", "minimum")  # the ops of two tensors QuantBinary computes
_FLOAT_OPS = dict(zip(BINARY_OPS, (torch.add, torch.sub, torch.mul, torch.maximum, torch.minimum)))


def on_grid(codes: torch.Tensor, q: ActQuant, out: ActQuant) -> torch.Tensor:
    """int64 codes of quantizer q on out's grid: requantized as the exported requantize op does, or
    unchanged when the two grids are one."""
    (si, zi), (so, zo) = q.qparams(), out.qparams()
    if (np.float32(si), zi) == (np.float32(so), zo):
        return codes
    m, sh = requant_params(si, so)
    return torch.clamp(mbqm(codes - zi, m, sh) + zo, out.fmt.qmin, out.fmt.qmax)


class QuantBinary(_HasInputs):
    """Elementwise add, subtract, multiply, maximum or minimum of two tensors, with a fused clamp
    (not for maximum / minimum) and an output quantizer. maximum and minimum compare codes on one
    grid, as TFLite does: an input on another grid is first requantized onto the output's (the
    exporter writes that requantize op too)."""

    def __init__(self, op: str, ofmt: NumFormat, clamp=(None, None), name: str = ""):
        super().__init__()
        self.op = op
        self.clamp = clamp
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([None, None])

    def extra_repr(self) -> str:
        return self.op

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = apply_clamp(_FLOAT_OPS[self.op](a, b), self.clamp)
        qa, qb = self.in_quants
        if not self._ready(qa, qb, self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            (sa, za), (sb, zb), (so, zo) = qa.qparams(), qb.qparams(), self.out_quant.qparams()
            ca, cb = qa.codes(a).to(torch.int64), qb.codes(b).to(torch.int64)
            if self.op in ("add", "sub"):
                params = (add_params if self.op == "add" else sub_params)(sa, sb, so)
                raw = add_codes(ca, cb, za, zb, zo, params, subtract=self.op == "sub")
            elif self.op == "mul":
                raw = mul_codes(ca, cb, za, zb, zo, mul_params(sa, sb, so))
            else:
                raw = _FLOAT_OPS[self.op](on_grid(ca, qa, self.out_quant), on_grid(cb, qb, self.out_quant))
            fmt = self.out_quant.fmt
            _, amin, amax = clamp_codes(self.clamp, so, zo, fmt.qmin, fmt.qmax)
            codes = torch.clamp(raw, amin, amax)
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))


class _Elementwise(_HasInputs):
    """A layer around a one-tensor callable (a module, or a call bound by the tracer)."""

    def __init__(self, fn, label: str):
        super().__init__()
        if isinstance(fn, nn.Module):
            self.fn = fn
        else:
            object.__setattr__(self, "fn", fn)
        self.label = label
        self.set_inputs([None])

    def extra_repr(self) -> str:
        return self.label


class QuantLUT(_Elementwise):
    """An elementwise function as a 256-entry table of output codes.

    Once both quantizers have ranges the forward looks the codes up in the
    table the exported C holds (bit-exact), with the function's own gradient.
    """

    def __init__(self, fn, ofmt: NumFormat, name: str = "", label: str = ""):
        super().__init__(fn, label)
        self.out_quant = ActQuant(ofmt, label=name)

    frozen = None

    def freeze(self) -> None:
        self.frozen = self.table()

    def table(self) -> torch.Tensor:
        """Output codes for input codes -128..127 (index = code + 128), as int64."""
        if self.frozen is not None:
            return self.frozen
        s, zp = self.in_quant.qparams()
        grid = (torch.arange(-128, 128, dtype=torch.float32) - zp) * torch.tensor(s, dtype=torch.float32)
        with torch.no_grad():
            return self.out_quant.codes(self.fn(grid)).to(torch.int64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a copy: an inplace activation (Hardswish(inplace=True), x.relu_()) would overwrite the values the
        # table is then looked up on, applying the function twice
        y = self.fn(x.clone())
        if not self._ready(self.in_quant, self.out_quant):
            return self.out_quant(y)
        codes = self.in_quant.codes(x).to(torch.int64) + 128
        s, zp = self.out_quant.qparams()
        out = (self.table()[codes].to(torch.float32) - zp) * torch.tensor(s, dtype=torch.float32)
        return ste(y, out)


class QuantCat(_HasInputs):
    """torch.cat; inputs whose grid differs from the output's are requantized onto it."""

    def __init__(self, dim: int, ofmt: NumFormat, name: str = ""):
        super().__init__()
        self.dim = dim
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([])

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = torch.cat(xs, dim=self.dim)
        if not self._ready(*self.in_quants, self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            parts = [on_grid(q.codes(x).to(torch.int64), q, self.out_quant) for x, q in zip(xs, self.in_quants)]
        return self.out_quant.attach(y, self.out_quant.dequantize(torch.cat(parts, dim=self.dim)))


class QuantAvgPool(_Elementwise):
    """Average pooling computed on the integer codes and rounded half away from zero,
    as the integer kernel does; input and output share one grid."""

    spec: dict = {}  # normalized pooling parameters (trace.pool_spec), for the exporter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fn(x)  # pooling has no inplace variant, so x still holds the input below
        if not self._ready(self.in_quant):
            return y
        s, zp = self.in_quant.qparams()
        codes = self.in_quant.codes(x).to(torch.float64)
        avg = round_half_away(self.fn(codes))
        return ste(y, ((avg - zp) * s).to(y.dtype))
