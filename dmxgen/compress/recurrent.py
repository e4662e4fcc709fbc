"""nn.LSTM as one fake-quantized layer: one integer `lstm` op per stacked layer (TFLite's 8x8_16 kernel).

What it computes is LiteRT's integer LSTM (`semantics="tflite"`, docs/lstm.md): int8 input and
output, per gate an int8 input and recurrent weight matrix (symmetric, one scale each), int32 gate
biases (b_ih + b_hh on the grid s_x * s_w), an int16 cell state whose scale is the power of two
TFLite's quantizer picks from the calibrated cell range, and both states starting from zero.
PyTorch's gate order (i, f, g, o) is the op's (input, forget, cell, output). Calibration runs the
float LSTM step by step, to record every layer's output range and cell range; training runs
nn.LSTM itself (its parameters learn), its output fake-quantized onto the output grid (as the
softmax: the integer path is the reference's numpy loop, seconds a batch); in eval, once the ranges
are recorded, the forward's values are the op's codes, computed by the op's own reference kernel
(ops/lstm.py) through the torch custom op `dmxgen::lstm`: one implementation, not a torch twin.

Also here, for nn.LSTM and nn.GRU alike (compress/gru.py holds the GRU's layer): what the tracer may
take from their (output, state) results (`recurrent_item_kind`: the output, sliced, and h_n[-1]) and
the base layer, `QuantRecurrent`.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from ..errors import DmxError
from ..graph.quant_params import litert_lstm_multipliers, lstm_cell_shift
from ..ops import SPECS
from ..ops.lstm import LstmAttrs
from .formats import NumFormat
from .layers import _HasInputs
from .quant import ActQuant, fake_quant_weight, quantize_bias

WEIGHT_FORMAT = NumFormat(8, "PER_TENSOR")  # the integer LSTM reads one scale per gate matrix
CELL_FORMAT = NumFormat(16, "PER_TENSOR")
CELL_SHIFTS = range(-15, -8)  # the cell scales 2^-15..2^-9 the kernel's int16 tanh handles
_SCALARS = ("input_zp", "state_zp", "hidden_multiplier", "hidden_shift", "hidden_zp", "cell_shift", "cell_clip")
_PER_GATE = ("input_multiplier", "input_shift", "recurrent_multiplier", "recurrent_shift")


def recurrent_problem(m: nn.Module) -> str | None:
    """Why the integer LSTM or GRU cannot run this nn.LSTM or nn.GRU (None: it can)."""
    what = type(m).__name__
    if not m.batch_first:
        return "batch_first=False is not supported (build it with batch_first=True)"
    if m.bidirectional:
        return f"a bidirectional {what} is not supported (the {what.lower()} op is unidirectional)"
    if not m.bias:
        return f"bias=False is not supported (the integer {what} has gate biases)"
    if getattr(m, "proj_size", 0):
        return f"proj_size={m.proj_size} is not supported yet (no projection in the PyTorch mapping)"
    return None


def check_recurrent_call(node: fx.Node, name: str, m: nn.Module) -> None:
    """The LSTM or GRU is called on its input alone: the integer ops start from zero states."""
    if len(node.args) > 1 or node.kwargs:
        what, state = type(m).__name__, "(h0, c0)" if isinstance(m, nn.LSTM) else "h0"
        raise DmxError(f"layer {name!r} ({what}): an initial state {state} is not supported; the integer {what} "
                       f"starts from zero states, call it as {what.lower()}(x)")


def _is_getitem(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem


def _check_h(h_n: fx.Node, where: str, layers: int) -> None:
    """h_n may be read only as h_n[-1], the last layer's final hidden state (output[:, -1])."""
    for use in h_n.users:
        index = use.args[1] if _is_getitem(use) else None
        if not isinstance(index, int) or index % layers != layers - 1:
            raise DmxError(f"{where}: of its final hidden state h_n only h_n[-1] (the last layer's, which is "
                           f"output[:, -1]) is supported ({use.name!r})")


def _check_state(state: fx.Node, where: str, layers: int) -> None:
    """An LSTM's (h_n, c_n): taken apart, c_n unread, h_n read as h_n[-1]."""
    for piece in state.users:
        if not _is_getitem(piece) or not isinstance(piece.args[1], int):
            raise DmxError(f"{where}: its final state (h_n, c_n) is used whole, which is not supported; "
                           "use h_n[-1] or output[:, -1]")
        if piece.args[1] % 2 == 1 and piece.users:
            raise DmxError(f"{where}: its final cell state c_n is read, which is not supported (the integer "
                           "LSTM's cell state stays inside the op)")
        if piece.args[1] % 2 == 0:
            _check_h(piece, where, layers)


# pieces of an LSTM's (output, (h_n, c_n)) or a GRU's (output, h_n) that the layer's output stands for
RECURRENT_PARTS = ("recurrent_output", "recurrent_state", "recurrent_h")


def recurrent_item_kind(node: fx.Node, source_kind: str, mods: dict) -> str:
    """The kind of a getitem on the result of an LSTM or GRU or on a piece of it: "recurrent_output" (the
    output, which the layer returns), "recurrent_state" (an LSTM's (h_n, c_n) and c_n, not read),
    "recurrent_h" (h_n), "recurrent_last" (h_n[-1], built as output[:, -1]) or, on the output, "slice"
    (`output[:, -1]`: an integer index takes one step or feature, not the batch)."""
    index = node.args[1]
    root = node.args[0]
    while root.op != "call_module":
        root = root.args[0]
    module = mods[root.target]
    where = f"layer {root.target!r} ({type(module).__name__})"
    if source_kind in ("recurrent", "recurrent_state") and not isinstance(index, int):
        raise DmxError(f"{where}: take the pieces of its result by integer indices ({node.name!r})")
    if source_kind == "recurrent":
        if index % 2 == 0:
            return "recurrent_output"
        if isinstance(module, nn.GRU):
            _check_h(node, where, module.num_layers)
            return "recurrent_h"
        _check_state(node, where, module.num_layers)
        return "recurrent_state"
    if source_kind == "recurrent_state":
        return "recurrent_h" if index % 2 == 0 else "recurrent_state"
    if source_kind == "recurrent_h":
        return "recurrent_last"
    items = index if isinstance(index, tuple) else (index,)
    for d, item in enumerate(items):
        if isinstance(item, int) and d == 0:
            raise DmxError(f"{where}: indexing its output's batch dim ({node.name!r}) is not supported")
        bounds = (item.start, item.stop, item.step) if isinstance(item, slice) else ()
        ok = item is Ellipsis or isinstance(item, int) or (
            isinstance(item, slice) and all(b is None or isinstance(b, int) for b in bounds))
        if not ok:
            raise DmxError(f"{where}: indexing its output with {type(item).__name__} ({node.name!r}) is not "
                           "supported; use integers and slices fixed when the model is traced")
    return "slice"


class CellRange(ActQuant):
    """The observer of a cell state's range; its grid is int16, zero point 0, scale 2^k as TFLite's
    quantizer picks it (graph/quant_params.py lstm_cell_shift). Calibration resets it with the others;
    its range is the min/max (a clipped cell state would change the recurrence, not just round it)."""

    minmax_only = True

    def __init__(self, label: str = ""):
        super().__init__(CELL_FORMAT, label)

    def qparams(self) -> tuple[float, int]:
        if self.frozen is not None:
            return self.frozen
        return 2.0 ** lstm_cell_shift(float(self.lo), float(self.hi)), 0


@dataclass
class LstmLayer:
    """One stacked layer as the integer op holds it: codes per gate, scales, the op's attrs."""

    w_in: np.ndarray  # int64 [4, cell, in]
    w_rec: np.ndarray  # int64 [4, cell, cell]
    bias: np.ndarray  # int64 [4, cell]
    in_scales: np.ndarray  # float32 [4]
    rec_scales: np.ndarray  # float32 [4]
    x_quant: ActQuant
    h_quant: ActQuant
    cell_shift: int
    attrs: dict


class QuantRecurrent(_HasInputs):
    """An nn.LSTM or nn.GRU (batch_first, unidirectional, with biases, zero initial state) with an output
    quantizer per stacked layer (the last is the layer's `out_quant`); subclasses add their state's
    observers, the codes and attrs of each layer (`int_layers`) and the op's kernel (`integer_forward`)."""

    what = ""  # LSTM | GRU

    def __init__(self, rnn: nn.Module, ofmt: NumFormat, name: str = ""):
        super().__init__()
        problem = recurrent_problem(rnn)
        if problem:
            raise DmxError(f"layer {name!r} ({self.what}): {problem}")
        if (ofmt.qmin, ofmt.qmax) != (-128, 127):
            raise DmxError(f"layer {name!r} ({self.what}): the integer {self.what} writes int8, not {ofmt.spelled()}")
        self.rnn, self.name = rnn, name
        self.layer_quants = nn.ModuleList(ActQuant(ofmt, label=f"{name}.layer{i}") for i in range(rnn.num_layers - 1))
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([None])
        for i in range(rnn.num_layers):  # added to b_ih / b_hh before quantization (compress/bias_correction.py)
            rows = getattr(rnn, f"weight_ih_l{i}").shape[0]
            self.register_buffer(f"ih_correction_l{i}", torch.zeros(rows))
            self.register_buffer(f"hh_correction_l{i}", torch.zeros(rows))
        self.correct_bias = True  # config `bias_correction`
        self._input_means: dict | None = None

    def correction_buffers(self) -> list[tuple[str, torch.Tensor]]:
        """(name, buffer) of every layer's ih_/hh_correction_l<i>."""
        return [(n, b) for n, b in self.named_buffers(recurse=False) if "_correction_l" in n]

    def begin_bias_correction(self) -> None:
        """Calibration starts: drop the old corrections; measure each layer's mean input and state."""
        for _, b in self.correction_buffers():
            b.zero_()
        self._input_means = {} if self.correct_bias else None

    def observe_layer(self, i: int, x: torch.Tensor, outs: torch.Tensor) -> None:
        """Layer i read x [N, T, in] and wrote outs [N, T, H] (float, from a zero state): keep each
        sample's mean input and mean state read (h_{t-1}, h_0 = 0) over the steps."""
        if self._input_means is None:
            return
        prev = torch.cat([outs.new_zeros(outs.shape[0], 1, outs.shape[2]), outs[:, :-1]], dim=1)
        xs, hs = self._input_means.setdefault(i, ([], []))
        xs.append(x.detach().double().mean(1))
        hs.append(prev.detach().double().mean(1))

    def end_bias_correction(self) -> None:
        """Calibration ends: minus (w_hat - w) times the mean input (state), per gate row, into the
        input (recurrent) bias, the mean pre-activation error that rounding the weights causes,
        shrunk by its standard error over the samples (compress/bias_correction.py shrunk_shift)."""
        from .bias_correction import shrunk_shift

        means, self._input_means = self._input_means, None
        hidden = self.rnn.hidden_size
        for i, (xs, hs) in (means or {}).items():
            for kind, per_sample in (("ih", torch.cat(xs)), ("hh", torch.cat(hs))):
                w = getattr(self.rnn, f"weight_{kind}_l{i}").detach()
                gates = [fake_quant_weight(w[k * hidden:(k + 1) * hidden], WEIGHT_FORMAT)[0]
                         for k in range(w.shape[0] // hidden)]
                errors = per_sample @ (torch.cat(gates).double() - w.double()).T  # [N, rows]
                shift = shrunk_shift(torch.zeros_like(errors), errors)
                getattr(self, f"{kind}_correction_l{i}").copy_(shift.float())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name, b in self.correction_buffers():  # saved before bias correction existed: none
            state_dict.setdefault(prefix + name, torch.zeros_like(b))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        rnn = self.rnn
        return f"{rnn.input_size}, {rnn.hidden_size}, num_layers={rnn.num_layers}, {self.what.lower()} op"

    def _quants(self) -> list[ActQuant]:
        return [self.in_quant, *self.layer_quants, self.out_quant]

    def grids(self, i: int) -> tuple[ActQuant, ActQuant]:
        """The quantizers of layer i's input and output (its hidden state)."""
        if self.in_quant.fmt.bits != 8:
            raise DmxError(f"layer {self.name!r} ({self.what}): the integer {self.what} reads int8, not "
                           f"{self.in_quant.fmt.spelled()}")
        last = i == self.rnn.num_layers - 1
        x = self.in_quant if i == 0 else self.layer_quants[i - 1]
        return x, (self.out_quant if last else self.layer_quants[i])

    def weights(self, i: int, rows: slice):
        """Gate rows of layer i: (input codes, input scale, recurrent codes, recurrent scale), int8 per matrix."""
        _, q_in, s_in = fake_quant_weight(getattr(self.rnn, f"weight_ih_l{i}").detach()[rows], WEIGHT_FORMAT)
        _, q_rec, s_rec = fake_quant_weight(getattr(self.rnn, f"weight_hh_l{i}").detach()[rows], WEIGHT_FORMAT)
        return q_in, float(s_in[0]), q_rec, float(s_rec[0])

    def gate_weights(self, i: int, gates: int) -> tuple[list, list, list, list]:
        """Layer i's gates in PyTorch's order: (input codes, input scales, recurrent codes, recurrent scales)."""
        hidden = self.rnn.hidden_size
        per_gate = [self.weights(i, slice(k * hidden, (k + 1) * hidden)) for k in range(gates)]
        return tuple(list(column) for column in zip(*per_gate))

    def bias(self, i: int, rows: slice, which: tuple[str, ...] = ("ih", "hh")) -> torch.Tensor:
        """The float biases `which` of layer i's rows, each with its bias correction."""
        return sum(getattr(self.rnn, f"bias_{w}_l{i}").detach()[rows] + getattr(self, f"{w}_correction_l{i}")[rows]
                   for w in which)

    frozen = None

    def freeze(self) -> None:
        """Fix the codes and attrs (for torch.export): forward then runs the integer path only."""
        self.frozen = self._consts(self.int_layers())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            return self.out_quant.dequantize(self.integer_forward(self.in_quant.codes(x), self.frozen))
        if x.dim() != 3:
            raise DmxError(f"layer {self.name!r} ({self.what}): needs a batched [N, T, features] input, "
                           f"got {list(x.shape)}")
        if self.out_quant.calibrating:
            return self.out_quant(self._calibrate(x))
        y, _ = self.rnn(x)
        if self.training or not self._ready(*self._quants()):  # the integer path is a numpy loop: eval only
            return self.out_quant(y)
        with torch.no_grad():
            codes = self.integer_forward(self.in_quant.codes(x), self._consts(self.int_layers()))
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))


class QuantLSTM(QuantRecurrent):
    """nn.LSTM (no projection) with a cell-range observer per stacked layer: the lstm op."""

    what = "LSTM"

    def __init__(self, lstm: nn.LSTM, ofmt: NumFormat, name: str = ""):
        super().__init__(lstm, ofmt, name)
        self.cell_ranges = nn.ModuleList(CellRange(label=f"{name}.cell{i}") for i in range(lstm.num_layers))

    def _quants(self) -> list[ActQuant]:
        return [*super()._quants(), *self.cell_ranges]

    def _calibrate(self, x: torch.Tensor) -> torch.Tensor:
        """The float LSTM step by step, recording each layer's output and cell ranges."""
        for i in range(self.rnn.num_layers):
            inputs = x
            x, cells = _float_layer(x, getattr(self.rnn, f"weight_ih_l{i}"), getattr(self.rnn, f"weight_hh_l{i}"),
                                    self.bias(i, slice(None)))
            self.observe_layer(i, inputs, x)
            self.cell_ranges[i].observe(cells)
            if i < self.rnn.num_layers - 1:
                self.layer_quants[i].observe(x)
        return x

    def int_layers(self) -> list[LstmLayer]:
        """Every stacked layer's codes and attrs on the current grids (all quantizers calibrated)."""
        layers = []
        hidden = self.rnn.hidden_size
        for i in range(self.rnn.num_layers):
            xq, hq = self.grids(i)
            (s_x, zp_x), (s_h, zp_h) = xq.qparams(), hq.qparams()
            w_in, in_s, w_rec, rec_s = self.gate_weights(i, 4)
            bias = [quantize_bias(self.bias(i, slice(k * hidden, (k + 1) * hidden)), s_x, torch.tensor([in_s[k]]))[1]
                    for k in range(4)]
            shift = int(round(np.log2(self.cell_ranges[i].qparams()[0])))
            if shift not in CELL_SHIFTS:
                lo, hi = float(self.cell_ranges[i].lo), float(self.cell_ranges[i].hi)
                raise DmxError(f"layer {self.name!r} (LSTM): layer {i}'s cell state reaches {max(-lo, hi):g}, which "
                               f"needs scale 2^{shift}; the integer LSTM's cell state holds at most 64 (scale 2^-9)")
            attrs = {"layout": "batch_major", "semantics": "tflite", "input_zp": zp_x, "state_zp": zp_h,
                     **litert_lstm_multipliers(s_x, s_h, in_s, rec_s, s_h),  # no projection: hidden = output
                     "hidden_zp": zp_h, "cell_shift": shift, "cell_clip": 0}
            layers.append(LstmLayer(stack_codes(w_in), stack_codes(w_rec), stack_codes(bias).reshape(4, hidden),
                                    np.array(in_s, np.float32), np.array(rec_s, np.float32), xq, hq, shift, attrs))
        return layers

    @staticmethod
    def _consts(layers: list[LstmLayer]) -> list[tuple]:
        return [(torch.from_numpy(lay.w_in), torch.from_numpy(lay.w_rec), torch.from_numpy(lay.bias),
                 pack(lay.attrs)) for lay in layers]

    def integer_forward(self, codes: torch.Tensor, consts: list[tuple]) -> torch.Tensor:
        for w_in, w_rec, bias, params in consts:
            codes = lstm_codes(codes.to(torch.int64), w_in, w_rec, bias, params)
        return codes


def quant_recurrent(m: nn.Module, ofmt: NumFormat, name: str) -> QuantRecurrent:
    """The fake-quantized layer of an nn.LSTM or nn.GRU."""
    if isinstance(m, nn.GRU):
        from .gru import QuantGRU

        return QuantGRU(m, ofmt, name)
    return QuantLSTM(m, ofmt, name)


def stack_codes(ts) -> np.ndarray:
    """Per-gate code tensors as one int64 array [gates, ...]."""
    return torch.stack(ts).to(torch.int64).numpy()


def _float_layer(x: torch.Tensor, w_ih, w_hh, b) -> tuple[torch.Tensor, torch.Tensor]:
    """One float LSTM layer from zero states: its outputs [N, T, H] and cell states [N, T, H]."""
    n, hidden = x.shape[0], w_hh.shape[1]
    h = c = x.new_zeros(n, hidden)
    outs, cells = [], []
    pre = x @ w_ih.T + b
    for t in range(x.shape[1]):
        i, f, g, o = (pre[:, t] + h @ w_hh.T).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h), cells.append(c)
    return torch.stack(outs, 1), torch.stack(cells, 1)


def pack(attrs: dict) -> list[int]:
    """The op's integer attrs as one list (a custom op's argument)."""
    return [int(attrs[k]) for k in _SCALARS] + [int(v) for k in _PER_GATE for v in attrs[k]]


def unpack(params: list[int]) -> LstmAttrs:
    scalars = dict(zip(_SCALARS, params))
    gates = {k: tuple(params[len(_SCALARS) + 4 * j:len(_SCALARS) + 4 * j + 4]) for j, k in enumerate(_PER_GATE)}
    return LstmAttrs(layout="batch_major", semantics="tflite", **scalars, **gates)


@torch.library.custom_op("dmxgen::lstm", mutates_args=())
def lstm_codes(x: torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor, bias: torch.Tensor,
               params: list[int]) -> torch.Tensor:
    """int8 codes (as int64) [N, T, in] -> the lstm op's output codes [N, T, cell] (int64), from zero
    states, by the op's reference kernel (ops/lstm.py)."""
    a = unpack(params)
    n, cell = x.shape[0], w_in.shape[1]
    args = [x.detach().cpu().numpy(), *w_in.numpy(), *w_rec.numpy(), *bias.numpy(),
            np.full((n, cell), a.state_zp, np.int64), np.zeros((n, cell), np.int64)]
    out = SPECS["lstm"].reference(SimpleNamespace(a=a), args, SimpleNamespace(dtype=np.dtype(np.int64)))
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.int64))


@lstm_codes.register_fake
def _(x, w_in, w_rec, bias, params):
    return x.new_empty((x.shape[0], x.shape[1], w_in.shape[1]), dtype=torch.int64)
