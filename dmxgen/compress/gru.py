"""nn.GRU as one fake-quantized layer: one `gru` op per stacked layer (ops/gru.py, dmxgen's own kind).

The integer LSTM's conventions (docs/lstm.md#gru): per gate (reset, update, new: PyTorch's order)
int8 input and recurrent weights with one scale each; the reset and update gates' biases
b_ih + b_hh on s_x * s_w, the new gate's b_in there and its b_hn on s_h * s_w (it sits inside the
reset product); the state on Q0.15, which needs no range; each layer's output grid from
calibration. Calibration runs the float GRU step by step (every layer's output range), training
nn.GRU itself (fake-quantized output), and in eval, once calibrated, the values are the op's codes,
by its reference kernel through the torch custom op `dmxgen::gru`.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from ..graph.fixedpoint import quantize_multiplier
from ..graph.quant_params import LSTM_Q0_15, LSTM_Q3_12, litert_lstm_multipliers
from ..ops import SPECS
from ..ops.gru import GruAttrs
from .quant import ActQuant, quantize_bias
from .recurrent import QuantRecurrent, stack_codes

_SCALARS = ("input_zp", "state_zp", "output_multiplier", "output_shift")
_PER_GATE = ("input_multiplier", "input_shift", "recurrent_multiplier", "recurrent_shift")


@dataclass
class GruLayer:
    w_in: np.ndarray  # int64 [3, hidden, in]
    w_rec: np.ndarray  # int64 [3, hidden, hidden]
    bias: np.ndarray  # int64 [3, hidden], on s_x * s_w_in
    rec_bias: np.ndarray  # int64 [hidden], the new gate's b_hn on s_h * s_w_rec
    in_scales: np.ndarray  # float32 [3]
    rec_scales: np.ndarray  # float32 [3]
    x_quant: ActQuant
    h_quant: ActQuant
    attrs: dict


class QuantGRU(QuantRecurrent):
    """nn.GRU: the gru op per stacked layer."""

    what = "GRU"

    def _calibrate(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.rnn.num_layers):
            inputs = x
            x = _float_layer(x, *(getattr(self.rnn, f"{p}_l{i}") for p in ("weight_ih", "weight_hh", "bias_ih",
                                                                               "bias_hh")))
            self.observe_layer(i, inputs, x)
            if i < self.rnn.num_layers - 1:
                self.layer_quants[i].observe(x)
        return x

    def int_layers(self) -> list[GruLayer]:
        layers = []
        hidden = self.rnn.hidden_size
        for i in range(self.rnn.num_layers):
            xq, hq = self.grids(i)
            (s_x, zp_x), (s_h, zp_h) = xq.qparams(), hq.qparams()
            w_in, in_s, w_rec, rec_s = self.gate_weights(i, 3)
            bias = [quantize_bias(self.bias(i, slice(k * hidden, (k + 1) * hidden), ("ih",) if k == 2 else ("ih", "hh")),
                                  s_x, torch.tensor([in_s[k]]))[1] for k in range(3)]  # the new gate's b_hn apart
            new = slice(2 * hidden, 3 * hidden)
            rec_bias = quantize_bias(self.bias(i, new, ("hh",)), s_h, torch.tensor([rec_s[2]]))[1]
            mults = litert_lstm_multipliers(s_x, s_h, in_s, rec_s, s_h, (LSTM_Q3_12,) * 3)
            om, osh = quantize_multiplier(float(np.float32(LSTM_Q0_15 / float(np.float32(s_h)))))
            attrs = {"input_zp": zp_x, "state_zp": zp_h, **{k: mults[k] for k in _PER_GATE},
                     "output_multiplier": om, "output_shift": osh}
            layers.append(GruLayer(stack_codes(w_in), stack_codes(w_rec), stack_codes(bias).reshape(3, hidden),
                                   rec_bias.to(torch.int64).numpy(), np.array(in_s, np.float32),
                                   np.array(rec_s, np.float32), xq, hq, attrs))
        return layers

    @staticmethod
    def _consts(layers: list[GruLayer]) -> list[tuple]:
        return [(torch.from_numpy(lay.w_in), torch.from_numpy(lay.w_rec), torch.from_numpy(lay.bias),
                 torch.from_numpy(lay.rec_bias), pack(lay.attrs)) for lay in layers]

    def integer_forward(self, codes: torch.Tensor, consts: list[tuple]) -> torch.Tensor:
        for w_in, w_rec, bias, rec_bias, params in consts:
            codes = gru_codes(codes.to(torch.int64), w_in, w_rec, bias, rec_bias, params)
        return codes


def _float_layer(x: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """One float GRU layer from a zero state: its outputs [N, T, H]."""
    h = x.new_zeros(x.shape[0], w_hh.shape[1])
    pre = x @ w_ih.T + b_ih
    outs = []
    for t in range(x.shape[1]):
        ir, iz, i_n = pre[:, t].chunk(3, dim=1)
        hr, hz, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
        outs.append(h)
    return torch.stack(outs, 1)


def pack(attrs: dict) -> list[int]:
    return [int(attrs[k]) for k in _SCALARS] + [int(v) for k in _PER_GATE for v in attrs[k]]


def unpack(params: list[int]) -> GruAttrs:
    gates = {k: tuple(params[len(_SCALARS) + 3 * j:len(_SCALARS) + 3 * j + 3]) for j, k in enumerate(_PER_GATE)}
    return GruAttrs(**dict(zip(_SCALARS, params)), **gates)


@torch.library.custom_op("dmxgen::gru", mutates_args=())
def gru_codes(x: torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor, bias: torch.Tensor, rec_bias: torch.Tensor,
              params: list[int]) -> torch.Tensor:
    """int8 codes (as int64) [N, T, in] -> the gru op's output codes [N, T, hidden] (int64), from a zero
    state, by the op's reference kernel (ops/gru.py)."""
    a = unpack(params)
    n, hidden = x.shape[0], w_in.shape[1]
    args = [x.detach().cpu().numpy(), *w_in.numpy(), *w_rec.numpy(), *bias.numpy(), rec_bias.numpy(),
            np.zeros((n, hidden), np.int64)]
    out = SPECS["gru"].reference(SimpleNamespace(a=a), args, SimpleNamespace(dtype=np.dtype(np.int64)))
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.int64))


@gru_codes.register_fake
def _(x, w_in, w_rec, bias, rec_bias, params):
    return x.new_empty((x.shape[0], x.shape[1], w_in.shape[1]), dtype=torch.int64)
