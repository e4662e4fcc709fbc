"""A QuantLSTM (compress/recurrent.py) -> one `lstm` op per stacked layer, as the TFLite frontend writes it;
a QuantGRU (compress/gru.py) -> one `gru` op per stacked layer (ops/gru.py).

Each op takes the int8 [1, T, in] input, the four gates' int8 input and recurrent weights (one
scale each, zero point 0), their int32 biases, and the two reset states as constants: the output
state at its zero point, the int16 cell state at 0 on its power-of-two grid (frontends/tflite_lstm.py
gives a converted model's states the same values). A stacked layer's output is the next one's input.
"""
from __future__ import annotations

import numpy as np

from ..graph import QuantParams
from ..ops.gru import GATES as GRU_GATES
from ..ops.lstm import GATES


def _per_tensor(scale: float, zero_point: int = 0) -> QuantParams:
    return QuantParams(np.array([scale], np.float32), np.array([zero_point], np.int64))


def export_recurrent(ex, node, name: str, mod, x):
    """The lstm (or gru) ops of `mod` on the exporter's Val x; returns the last layer's output Val."""
    if x.layout == "ncl" and x.perm is None:  # a Conv1d's [N, C, L] read as [N, T, features]: torch's order
        x = ex.to_torch_order(name, x)
    if x.layout != "plain" or x.perm is not None or len(x.tshape) != 3:
        what = "a flattened NCHW" if x.perm is not None else f"an {x.layout.upper()}" if x.layout != "plain" else \
            f"a {len(x.tshape)}-D"
        ex.fail(name, f"an {mod.what} over {what} tensor is not supported; it needs a plain [N, T, features] input")
    if mod.what == "GRU":
        return export_gru(ex, name, mod, x)
    layers = mod.int_layers()
    steps = x.tshape[1]
    for i, lay in enumerate(layers):
        last = i == len(layers) - 1
        op = name if last else f"{name}.layer{i}"
        s_x, _ = lay.x_quant.qparams()
        s_h, zp_h = lay.h_quant.qparams()
        cell = lay.w_in.shape[1]
        ins = [x.name, *_gate_consts(ex, op, lay, GATES, s_x)]
        ins.append(ex.const(f"{op}.h0", np.full((1, cell), zp_h), "int8", _per_tensor(s_h, zp_h)))
        ins.append(ex.const(f"{op}.c0", np.zeros((1, cell)), "int16", _per_tensor(2.0 ** lay.cell_shift)))
        out = ex.new_tensor(op, (1, steps, cell), "plain", lay.h_quant)
        ex.add_op(op, "lstm", ins, out.name, lay.attrs)
        x = out
    return x


def _gate_consts(ex, op: str, lay, gates, s_x: float) -> list[str]:
    """Per gate the int8 input weights, then the recurrent ones, then the int32 input-side biases on
    s_x * s_w (the inputs' order in ops/lstm.py and ops/gru.py)."""
    names = []
    for kind, codes, scales in (("w", lay.w_in, lay.in_scales), ("r", lay.w_rec, lay.rec_scales)):
        names += [ex.const(f"{op}.{g}_{kind}", codes[k], "int8", _per_tensor(scales[k])) for k, g in enumerate(gates)]
    return names + [ex.const(f"{op}.{g}_b", lay.bias[k], "int32", _per_tensor(float(np.float32(s_x) * lay.in_scales[k])))
                    for k, g in enumerate(gates)]


def export_gru(ex, name: str, mod, x):
    """The gru ops (ops/gru.py): per gate input and recurrent weights, the input-side biases, the new gate's
    recurrent bias, the int16 Q0.15 state at 0."""
    steps = x.tshape[1]
    for i, lay in enumerate(mod.int_layers()):
        op = name if i == mod.rnn.num_layers - 1 else f"{name}.layer{i}"
        s_x, _ = lay.x_quant.qparams()
        s_h, _ = lay.h_quant.qparams()
        cell = lay.w_in.shape[1]
        ins = [x.name, *_gate_consts(ex, op, lay, GRU_GATES, s_x)]
        ins.append(ex.const(f"{op}.new_rb", lay.rec_bias, "int32",
                            _per_tensor(float(np.float32(s_h) * lay.rec_scales[2]))))
        ins.append(ex.const(f"{op}.h0", np.zeros((1, cell)), "int16", _per_tensor(2.0**-15)))
        out = ex.new_tensor(op, (1, steps, cell), "plain", lay.h_quant)
        ex.add_op(op, "gru", ins, out.name, lay.attrs)
        x = out
    return x
