"""Bias correction (compress/bias_correction.py): the measured correction is the mean weight-rounding
error negated, it lowers the model's error, it is off when configured off, and old state dicts load."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmxgen
from dmxgen.errors import DmxError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)).eval()


def _calibrated(net, x, config=None):
    m = dmxgen.Model(net).transform(config)
    with m.calibrating():
        m(x)
    return m.eval()


def test_correction_is_the_shrunk_mean_of_float_minus_quantized_output():
    torch.manual_seed(1)
    net, x = nn.Sequential(nn.Linear(12, 6)).eval(), torch.rand(64, 12) * 3
    m = _calibrated(net, x)
    fc = m.weighted_layers()["0"]
    got = fc.bias_correction.clone()
    fc.bias_correction.zero_()  # what the correction run saw: the layer without a correction
    _, codes, scales, b_hat, _ = fc.quantized()
    fc.bias_correction.copy_(got)
    q = m.input_quant()
    x_q = q.dequantize(q.codes(x)).double()  # the input as the quantized run reads it
    pre = x_q @ (codes.double() * scales.double().reshape(-1, 1)).T + b_hat.double()
    d = net[0](x).detach().double() - pre
    mean, se2 = d.mean(0), d.var(0, unbiased=True) / d.shape[0]
    want = mean * torch.clamp(1 - se2 / mean.pow(2), min=0)
    assert got.abs().max() > 0
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)


def test_correction_lowers_the_mean_output_error():
    net, x = _net(), torch.rand(256, 12) * 3
    with torch.no_grad():
        f = net(x)
    on = _calibrated(net, x)
    off = _calibrated(net, x, {"re:.*": {"bias_correction": False}})
    with torch.no_grad():
        mean_on, mean_off = (on(x) - f).mean(0).abs().mean(), (off(x) - f).mean(0).abs().mean()
    assert all(float(layer.bias_correction.abs().max()) == 0.0 for layer in off.weighted_layers().values())
    assert mean_on < 0.5 * mean_off


def test_correction_is_in_the_bias_codes_the_export_stores():
    net, x = _net(), torch.rand(64, 12) * 3
    on = _calibrated(net, x).weighted_layers()["2"]
    off = _calibrated(net, x, {"2": {"bias_correction": False}}).weighted_layers()["2"]
    b_on, b_off = on.quantized()[4], off.quantized()[4]
    s_in = on.in_quant.qparams()[0]
    step = s_in * on.quantized()[2].double()
    shift = (b_on - b_off).double() * step
    torch.testing.assert_close(shift, on.bias_correction.double(), atol=float(step.max()), rtol=0)


def test_recurrent_layers_get_a_correction_per_gate_row():
    torch.manual_seed(0)
    net = nn.LSTM(6, 8, batch_first=True).eval()

    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = net

        def forward(self, x):
            return self.rnn(x)[0]

    m = _calibrated(Last(), torch.rand(16, 5, 6))
    rnn = m.body.get_submodule("rnn")
    assert rnn.ih_correction_l0.shape == (32,) and rnn.ih_correction_l0.abs().max() > 0
    assert rnn.hh_correction_l0.abs().max() > 0


def test_a_state_dict_without_the_correction_loads_as_none():
    net, x = _net(), torch.rand(64, 12) * 3
    m = _calibrated(net, x)
    state = {k: v for k, v in m.state_dict().items() if not k.endswith("bias_correction")}
    m.load_state_dict(state)
    assert all(float(layer.bias_correction.abs().max()) == 0.0 for layer in m.weighted_layers().values())


def test_a_non_boolean_value_is_refused_naming_the_key():
    with pytest.raises(DmxError, match="bias_correction.*true or false"):
        dmxgen.Model(_net()).transform({"re:.*": {"bias_correction": "yes"}})


def test_after_training_calibration_keeps_the_correction_and_transform_carries_it():
    net, x = _net(), torch.rand(64, 12) * 3
    m = _calibrated(net, x)
    before = m.weighted_layers()["2"].bias_correction.clone()
    assert before.abs().max() > 0
    with torch.no_grad():  # what a training step does: the float weights move
        m.weighted_layers()["2"].layer.weight.add_(0.01)
    with m.calibrating():
        m(x)
    torch.testing.assert_close(m.weighted_layers()["2"].bias_correction, before, rtol=0, atol=0)
    m.transform(None)  # new layers; the trained model's corrections come along
    torch.testing.assert_close(m.weighted_layers()["2"].bias_correction, before, rtol=0, atol=0)


def test_calibrating_again_without_training_measures_the_same_correction():
    net, x = _net(), torch.rand(64, 12) * 3
    m = _calibrated(net, x)
    first = m.weighted_layers()["2"].bias_correction.clone()
    with m.calibrating():
        m(x)
    torch.testing.assert_close(m.weighted_layers()["2"].bias_correction, first)
