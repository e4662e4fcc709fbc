"""Activation calibration methods (compress/calibration.py): MSE and PERCENTILE clip the range,
MINMAX keeps it; the config key; the export stays bit-exact whatever the range."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen.api import Model, save
from dmxgen.compress.calibration import MINMAX, MSE, RunningHistogram, parse_calibration, quantization_error
from dmxgen.compress.formats import parse_format
from dmxgen.compress.quant import ActQuant
from dmxgen.errors import DmxError
from dmxgen.frontends import load as load_graph
from tests.ops._torch import assert_codes_agree

INT8 = parse_format("INT8", "output")


def outliers(n: int = 40000, seed: int = 0) -> torch.Tensor:
    """A unit Gaussian with five outliers far out on both sides."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(n, generator=g), torch.tensor([40.0, -35.0, 50.0, 30.0, -28.0])])


def observed(x: torch.Tensor, method, batches: int = 4) -> ActQuant:
    q = ActQuant(INT8, "t", method)
    q.reset()
    for b in x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(1))].chunk(batches):
        q.observe(b)
    q.finish_calibration()
    return q


def best_by_search(x: torch.Tensor) -> float:
    """The least error over a 60 x 60 grid of ranges [f min, g max]."""
    lo, hi = float(x.min()), float(x.max())
    fs = np.linspace(0.05, 1.0, 60)
    return min(quantization_error(x, lo * f, hi * g, INT8) for f in fs for g in fs)


def test_mse_clips_outliers_with_less_error_than_minmax():
    x = outliers()
    mm, mse = observed(x, MINMAX), observed(x, MSE)
    assert (float(mm.lo), float(mm.hi)) == (float(x.min()), float(x.max()))
    lo, hi = float(mse.lo), float(mse.hi)
    assert float(x.min()) < lo < -3 and 3 < hi < float(x.max())  # the extreme outliers clipped, the bulk kept
    e_mm, e_mse = quantization_error(x, float(mm.lo), float(mm.hi), INT8), quantization_error(x, lo, hi, INT8)
    assert e_mse < 0.95 * e_mm
    assert e_mse <= 1.01 * best_by_search(x)  # L2 pays (x - clip)^2 per outlier: the best range clips them only partly


@pytest.mark.parametrize("make", [lambda g: torch.relu(torch.randn(30000, generator=g)),
                                  lambda g: torch.distributions.Laplace(0.0, 1.0).sample((30000,)),
                                  lambda g: torch.randn(30000, generator=g) + 4.0], ids=["relu", "laplace", "shifted"])
def test_mse_is_near_the_best_range_on_other_shapes(make):
    torch.manual_seed(3)
    x = make(torch.Generator().manual_seed(3))
    q = observed(x, MSE)
    e = quantization_error(x, float(q.lo), float(q.hi), INT8)
    assert e <= quantization_error(x, float(x.min()), float(x.max()), INT8)
    assert e <= 1.02 * best_by_search(x)


def test_percentile_range_is_the_quantiles():
    x = outliers()
    q = observed(x, parse_calibration("PERCENTILE{99.9}"))
    lo_want, hi_want = (float(v) for v in torch.quantile(x, torch.tensor([0.001, 0.999])))
    step = 2 * float(x.abs().max()) / 4096 * 2  # at most two bin widths (the histogram's width may have doubled)
    assert abs(float(q.lo) - lo_want) <= step and abs(float(q.hi) - hi_want) <= step


def test_running_histogram_merges_batches_exactly():
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(5000, generator=g) * s for s in (0.5, 1.0, 3.0, 9.0)]  # each reaches further
    grown = RunningHistogram()
    for b in batches:
        grown.add(b)
    assert grown.width > float(batches[0].abs().max()) / grown.half  # it doubled
    direct = RunningHistogram()
    direct.width = grown.width  # the final width from the start: no merging
    for b in batches:
        direct.add(b)
    assert np.array_equal(grown.counts, direct.counts)
    assert grown.counts.sum() + grown.zeros == sum(b.numel() for b in batches)


@pytest.mark.parametrize("text, want", [("MINMAX", MINMAX), ("mse", MSE), (" Mse ", MSE),
                                        ("PERCENTILE{99.99}", parse_calibration("percentile{99.99}")),
                                        ("PERCENTILE{100}", MINMAX)])
def test_values_parse(text, want):
    assert parse_calibration(text) == want


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def _refusal(config) -> str:
    with pytest.raises(DmxError) as e:
        Model(Small()).transform(config)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("value, words", [("HISTOGRAM", "MINMAX, MSE or PERCENTILE{99.99}"),
                                          ("PERCENTILE{40}", "(50, 100]"), ("PERCENTILE{x}", "malformed"),
                                          (99.9, "expected a string")])
def test_bad_values_are_refused_naming_key_and_layer(value, words):
    msg = _refusal({"fc": {"activation_calibration": value}})
    assert "'fc'" in msg and "activation_calibration" in msg and words in msg


def test_a_layer_without_a_grid_of_its_own_refuses_the_key():
    msg = _refusal({"pool": {"activation_calibration": "MSE"}})
    assert "'pool'" in msg and "activation_calibration does not apply" in msg


def _methods(m: Model) -> dict[str, str]:
    return {q.label: q.calibration.spelled() for q in m.act_quants().values()}


def test_selectors_choose_the_method_per_layer():
    m = Model(Small()).transform({"re:.*": {"activation_calibration": "PERCENTILE{99}"},
                                  "fc": {"activation_calibration": "MINMAX"}})
    assert _methods(m) == {"x": "PERCENTILE{99}", "conv": "PERCENTILE{99}", "fc": "MINMAX"}
    assert set(_methods(Model(Small()).transform(None)).values()) == {"MSE"}  # the default
    takes = {li.name for li in m.layers if "activation_calibration" in li.fields}
    assert takes == {"x", "conv", "fc"}  # what has a grid of its own; the pool and flatten keep their input's


def _calibrated(config, x_batches):
    torch.manual_seed(0)
    m = Model(Small().eval()).transform(config)
    with m.calibrating():
        for x in x_batches:
            m(x)
    return m.eval()


def _spiky(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    x[0, 0, 0, 0], x[-1, 0, 5, 5] = 25.0, -20.0  # outliers that min/max would spend the grid on
    return x


def test_calibration_over_batches_clips_inside_the_observed_range():
    batches = [_spiky(16, s) for s in range(3)]
    mm = _calibrated({"re:.*": {"activation_calibration": "MINMAX"}}, batches)
    mse = _calibrated(None, batches)
    x = torch.cat(batches)
    q_mm, q_mse = mm.act_quants()["x_quant"], mse.act_quants()["x_quant"]
    assert (float(q_mm.lo), float(q_mm.hi)) == (float(x.min()), float(x.max()))
    assert float(x.min()) < float(q_mse.lo) and float(q_mse.hi) < float(x.max())
    again = _calibrated(None, batches)  # calibrating again from a fresh start gives the same grids
    assert [q.qparams() for q in again.act_quants().values()] == [q.qparams() for q in mse.act_quants().values()]
    with mse.calibrating():  # and re-calibrating a model discards its earlier histogram
        for b in batches:
            mse(b)
    assert [q.qparams() for q in again.act_quants().values()] == [q.qparams() for q in mse.act_quants().values()]


@pytest.mark.parametrize("method", ["MSE", "PERCENTILE{99.5}", "MINMAX"])
def test_export_is_bit_exact_with_each_method(method):
    batches = [_spiky(16, s) for s in range(2)]
    m = _calibrated({"re:.*": {"activation_calibration": method}}, batches)
    x = torch.cat(batches)
    codes = assert_codes_agree(m, m.to_graph(x[:1]), x)
    assert len(np.unique(codes)) > 5  # the check compared real outputs, not a saturated constant


def test_saved_model_keeps_the_clipped_ranges(tmp_path):
    x = _spiky(32, 7)
    m = _calibrated(None, [x])
    q = m.act_quants()["x_quant"]
    assert float(q.hi) < float(x.max())
    g = load_graph(save(m, tmp_path / "m.pt2", x))
    scale, zp = q.qparams()
    t = g.tensors[g.inputs[0]].quant
    assert np.float32(t.scale[0]) == np.float32(scale) and int(t.zero_point[0]) == zp


def test_an_lstm_cell_state_keeps_its_min_max():
    from dmxgen.compress.recurrent import CellRange
    from dmxgen.testing.torch_zoo import ZOO, inputs

    m = Model(ZOO["kws_lstm"][0]()).transform({"re:.*": {"activation_calibration": "PERCENTILE{99}"}})
    cells = [q for q in m.act_quants().values() if isinstance(q, CellRange)]
    others = [q for q in m.act_quants().values() if not isinstance(q, CellRange)]
    assert cells and {q.calibration for q in cells} == {MINMAX}
    assert {q.calibration.spelled() for q in others} == {"PERCENTILE{99}"}
    x = inputs("kws_lstm", 8)
    with m.calibrating():
        m(x)
    assert_codes_agree(m.eval(), m.to_graph(x[:1]), x)


class Skip(nn.Module):
    """A U-Net style skip: two branches of different ranges concatenated."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(1, 3, 1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.head(torch.cat([torch.relu(self.a(x)), 0.1 * torch.relu(self.b(x))], 1))


def test_a_cat_keeps_its_widest_input_grid():
    torch.manual_seed(2)
    x = _spiky(16, 3)
    m = Model(Skip().eval()).transform(None)
    with m.calibrating():
        m(x)
    quants = {q.label: q for q in m.act_quants().values()}
    cat = next(v for k, v in quants.items() if k.startswith("cat"))
    ins = sorted(cat_inputs(m), key=lambda q: float(q.hi))
    assert cat.qparams() == ins[-1].qparams() != ins[0].qparams()  # the wide input is not requantized
    assert_codes_agree(m.eval(), m.to_graph(x[:1]), x)


def cat_inputs(m: Model) -> list:
    from dmxgen.compress.layers import QuantCat

    return next(mod for mod in m.body.modules() if isinstance(mod, QuantCat)).in_quants
