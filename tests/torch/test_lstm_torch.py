"""nn.LSTM through dmxgen.Model: one integer `lstm` op per stacked layer (LiteRT's 8x8_16 kernel).

The fake-quantized model's codes are the integer reference's (the layer runs the op's own kernel),
and each exported op is what LiteRT computes for a one-op .tflite holding the same tensors (the
TFLite frontend reading that file derives the same attrs).
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from torch import nn

import dmxgen
from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph.quant_params import lstm_cell_shift
from dmxgen.testing.tflite_builder import ModelBuilder

from ..ops._torch import assert_codes_agree, calibrated


class KWS(nn.Module):
    """Keyword spotting: 49 frames of 10 MFCCs -> LSTM -> the last step -> 12 classes."""

    def __init__(self, hidden=24, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(10, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, 12)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


class EveryStep(nn.Module):
    """The whole output sequence feeds a Linear (one prediction per step)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 12, batch_first=True)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


def _scaled(make, gain: float):
    """make() with the LSTM's weights scaled: larger weights drive the cell state further."""
    def build():
        net = make()
        with torch.no_grad():
            for p in net.lstm.parameters():
                p.mul_(gain)
        return net
    return build


@pytest.mark.parametrize("hidden,layers,gain", [(16, 1, 3.0), (32, 2, 2.0)])
def test_kws_lstm_codes_are_the_integer_references(hidden, layers, gain):
    m, x = calibrated(_scaled(lambda: KWS(hidden, layers), gain), (4, 49, 10))
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["lstm"] * layers + ["strided_slice", "fully_connected"]
    lstm_ops = g.ops[:layers]
    assert all(op.a.semantics == "tflite" and op.a.layout == "batch_major" for op in lstm_ops)
    assert any(op.a.cell_shift > -15 for op in lstm_ops)  # the gain moves a cell scale off its floor
    codes = assert_codes_agree(m, g, x)
    assert len(np.unique(codes)) > 20  # not a saturated, constant output


class LastHidden(nn.Module):
    """The common spelling: the classifier reads h_n[-1], the last layer's final hidden state."""

    def __init__(self, layers):
        super().__init__()
        self.lstm = nn.LSTM(10, 16, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(16, 12)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


@pytest.mark.parametrize("layers", [1, 2])
def test_h_n_of_the_last_layer_is_the_outputs_last_step(layers):
    torch.manual_seed(6)
    net = _scaled(lambda: LastHidden(layers), 2.0)()
    m, x = calibrated(lambda: net, (3, 15, 10))
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["lstm"] * layers + ["strided_slice", "fully_connected"]
    codes = assert_codes_agree(m, g, x)
    same = KWS(16, layers)
    same.load_state_dict(net.state_dict())
    m2 = dmxgen.Model(same).transform()
    with m2.calibrating():
        m2(x)
    assert np.array_equal(m2.eval().output_codes(x), codes)  # output[:, -1] is the same model


def test_every_step_of_the_output_sequence():
    m, x = calibrated(_scaled(EveryStep, 2.0), (4, 7, 6), seed=1)
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["lstm", "fully_connected"]
    assert assert_codes_agree(m, g, x).shape == (4, 7, 5)


def _one_op_tflite(g, op, path):
    """The TFLite converter's file for one lstm op of g: the same tensors, the states as variables,
    the five intermediates (four Q3.12 gates, the hidden state on the output's grid)."""
    mb = ModelBuilder()

    def tensor(name, data=True, variable=False):
        t = g.tensors[name]
        return mb.tensor(name, t.shape, t.dtype, float(t.quant.scale[0]), int(t.quant.zero_point[0]),
                         data=t.data if data else None, is_variable=variable)

    x, y = tensor(op.inputs[0], data=False), tensor(op.outputs[0], data=False)
    consts = [tensor(n) for n in op.inputs[1:13]]
    h, c = tensor(op.inputs[13], data=False, variable=True), tensor(op.inputs[14], data=False, variable=True)
    out = g.tensors[op.outputs[0]].quant
    inter = [mb.tensor(f"inter{k}", [0], "int16", 2.0**-12, 0) for k in range(4)]
    inter.append(mb.tensor("inter_hidden", [0], "int8", float(out.scale[0]), int(out.zero_point[0])))
    ins = [x, *consts[:8], -1, -1, -1, *consts[8:], -1, -1, h, c, -1, -1, -1, -1]
    mb.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], intermediates=inter, fusedActivationFunction=4,
          cellClip=0.0, projClip=0.0, timeMajor=False)
    return mb.save(path, [x], [y])


def test_each_lstm_op_is_what_litert_computes(tmp_path):
    """Both ops of a 2-layer LSTM against LiteRT (BUILTIN_REF) on the codes the reference feeds them;
    the TFLite frontend, reading the same tensors, derives the attrs the PyTorch side wrote."""
    m, x = calibrated(_scaled(lambda: KWS(20, 2), 2.0), (3, 49, 10), seed=2)
    g = m.to_graph(x[:1])
    skip = {"forget_mul", "update_mul"}  # TFLite Micro's constants: the tflite semantics do not read them
    for i in range(3):
        values = reference.run(g, [m.quantize_input(x[i:i + 1])], keep=True)
        for op in g.ops[:2]:
            path = _one_op_tflite(g, op, tmp_path / f"{op.name}.tflite")
            theirs = load_tflite(path).ops[0].a
            assert {k: v for k, v in dataclasses.asdict(theirs).items() if k not in skip} == \
                {k: v for k, v in dataclasses.asdict(op.a).items() if k not in skip}
            (gold,) = run_golden(path, [values[op.inputs[0]]])
            want = values[op.outputs[0]]
            assert np.array_equal(gold, want), f"{op.name}: {(gold != want).sum()} of {want.size} differ"


def test_cell_scale_is_tflites_power_of_two_over_the_calibrated_cell_range():
    """Calibration records every step's cell state (nn.LSTM run on each prefix gives c_t), and the cell scale is
    the least 2^p / 32768 covering it, as TFLite's quantizer picks it."""
    m, x = calibrated(_scaled(lambda: KWS(16, 1), 3.0), (4, 12, 10), seed=3)
    lstm, layer = m.float_net.lstm, m.body.lstm
    with torch.no_grad():
        cells = torch.stack([lstm(x[:, :t + 1])[1][1][0] for t in range(x.shape[1])])
    bound = float(cells.abs().max())
    observed = layer.cell_ranges[0]
    assert max(-float(observed.lo), float(observed.hi)) == pytest.approx(bound, rel=1e-5)
    k = m.to_graph(x[:1]).ops[0].a.cell_shift
    assert k == lstm_cell_shift(-bound, bound) and 2.0 ** (k + 15) >= bound > 2.0 ** (k + 14)


@pytest.mark.parametrize("bound", [0.0, 0.3, 1.0, 1.0001, 3.9, 64.0])
def test_lstm_cell_shift_is_the_least_covering_power_of_two(bound):
    k = lstm_cell_shift(-bound / 2, bound)
    assert 2.0 ** (k + 15) >= bound and (k == -15 or 2.0 ** (k + 14) < bound)


def test_training_runs_the_float_lstm_fake_quantized():
    """train(): nn.LSTM's output on the output grid, near the integer codes; the gradient reaches every
    parameter of the LSTM."""
    m, x = calibrated(_scaled(lambda: KWS(16, 2), 2.0), (4, 10, 10), seed=4)
    lstm = m.body.lstm
    with torch.no_grad():
        want = lstm.out_quant.codes(lstm(lstm.in_quant(x)))
    m.train()
    got = lstm(lstm.in_quant(x))
    s, zp = lstm.out_quant.qparams()
    codes = got.detach() / s + zp
    assert torch.allclose(codes, codes.round(), atol=1e-3)  # on the grid
    assert int((codes.round() - want).abs().max()) <= 3  # float vs integer LSTM, 2 layers, 10 steps: 2 measured
    y = m(x)
    y.square().sum().backward()
    grads = [p.grad for p in m.float_net.lstm.parameters()]
    assert all(gr is not None for gr in grads) and all(float(gr.abs().sum()) > 0 for gr in grads)


class _Net(nn.Module):
    def __init__(self, forward, **lstm):
        super().__init__()
        self.lstm = nn.LSTM(10, 8, **{"batch_first": True, **lstm})
        self.fc = nn.Linear(8, 3)
        self._forward = forward

    def forward(self, x):
        return self._forward(self, x)


def _last(self, x):
    return self.fc(self.lstm(x)[0][:, -1])


def _cell_state(self, x):
    _, (h, c) = self.lstm(x)
    return self.fc(c[-1])


def _first_layer_state(self, x):
    _, (h, c) = self.lstm(x)
    return self.fc(h[0])


def _initial_state(self, x):
    h0 = torch.zeros(1, x.shape[0], 8)
    return self.fc(self.lstm(x, (h0, h0))[0][:, -1])


def _batch_index(self, x):
    return self.fc(self.lstm(x)[0][0])


UNSUPPORTED = "layer 'lstm' (LSTM) is not supported by the torch frontend: {}; see docs/compression.md#supported-layers"
TRANSFORM_REFUSALS = [
    (_cell_state, {}, "layer 'lstm' (LSTM): its final cell state c_n is read, which is not supported (the integer "
                      "LSTM's cell state stays inside the op)"),
    (_first_layer_state, {"num_layers": 2}, "layer 'lstm' (LSTM): of its final hidden state h_n only h_n[-1] (the "
                                            "last layer's, which is output[:, -1]) is supported ('getitem_4')"),
    (_initial_state, {}, "layer 'lstm' (LSTM): an initial state (h0, c0) is not supported; the integer LSTM starts "
                         "from zero states, call it as lstm(x)"),
    (_batch_index, {}, "layer 'lstm' (LSTM): indexing its output's batch dim ('getitem_1') is not supported"),
    (_last, {"batch_first": False}, UNSUPPORTED.format("batch_first=False is not supported (build it with "
                                                       "batch_first=True)")),
    (_last, {"bidirectional": True}, UNSUPPORTED.format("a bidirectional LSTM is not supported (the lstm op is "
                                                        "unidirectional)")),
    (_last, {"bias": False}, UNSUPPORTED.format("bias=False is not supported (the integer LSTM has gate biases)")),
    (_last, {"proj_size": 4}, UNSUPPORTED.format("proj_size=4 is not supported yet (no projection in the PyTorch "
                                                 "mapping)")),
]


@pytest.mark.parametrize("forward,options,message", TRANSFORM_REFUSALS)
def test_refused_at_transform_in_one_line(forward, options, message):
    with pytest.raises(DmxError) as e:
        dmxgen.Model(_Net(forward, **options)).transform()
    assert str(e.value) == message


def test_int4_output_is_refused():
    with pytest.raises(DmxError) as e:
        dmxgen.Model(_Net(_last)).transform({"lstm": {"output_format": "INT4"}})
    assert str(e.value) == "layer 'lstm' (LSTM): the integer LSTM writes int8, not INT4(PER_TENSOR)"


def test_a_cell_state_beyond_64_is_refused_on_the_first_calibration_batch():
    """The kernel's int16 cell state holds at most 2^6 (scale 2^-9); a larger calibrated range is one line."""
    net = _Net(_last).eval()
    with torch.no_grad():
        net.lstm.bias_ih_l0[:8].fill_(20.0)  # input gate open
        net.lstm.bias_ih_l0[8:16].fill_(20.0)  # forget gate open: the cell adds up every step
        net.lstm.bias_ih_l0[16:24].fill_(20.0)  # cell gate at 1
    m = dmxgen.Model(net).transform()
    with pytest.raises(DmxError) as e, m.calibrating():
        m(torch.randn(2, 80, 10))
    assert re.fullmatch(r"layer 'lstm' \(LSTM\): layer 0's cell state reaches (7\d\.\d+|80), which needs scale 2\^-8; "
                        r"the integer LSTM's cell state holds at most 64 \(scale 2\^-9\)", str(e.value)), str(e.value)


def test_kws_lstm_saves_loads_exports_to_c_and_verifies_bit_exact(tmp_path):
    """dmxgen.save (torch.export records the custom op) and dmxgen.load keep the codes; `dmxgen export` (the
    lstm op's C kernel) and `dmxgen verify`: the C on the host against the integer reference, to the bit."""
    import json

    from click.testing import CliRunner

    from dmxgen.cli import main

    m, x = calibrated(_scaled(lambda: KWS(16, 2), 2.0), (4, 49, 10), seed=7)
    path = dmxgen.save(m, tmp_path / "kws.pt2", x)
    with torch.no_grad():
        assert torch.equal(dmxgen.load(path)(x[:1]), m(x[:1]))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["export", str(path), "-o", str(out), "--vectors", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["verify", str(out), "--json"], catch_exceptions=False)
    result = json.loads(r.output)
    assert r.exit_code == 0 and result["bit_exact"], r.output
    assert [layer["op"] for layer in result["layers"]] == ["lstm", "lstm", "strided_slice", "fully_connected"]



class ConvThenLSTM(nn.Module):
    """A Conv1d's [N, C, L] output fed to the LSTM as [N, T=C, features=L] (the graph holds it NLC: transposed)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.lstm = nn.LSTM(10, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.lstm(self.conv(x))[0][:, -1])


def test_lstm_after_a_conv1d_reads_torch_order():
    m, x = calibrated(ConvThenLSTM, (3, 4, 10), seed=10)
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops] == ["conv2d", "reshape", "transpose", "lstm", "strided_slice", "fully_connected"]
    assert_codes_agree(m, g, x)
