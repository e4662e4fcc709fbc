"""Power-of-two requantization (config `requantization: POWER_OF_TWO`): shifts only, bit-exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmxgen.graph.fixedpoint import multiply_by_quantized_multiplier_single
from dmxgen.graph.quant_params import conv_multipliers, pot_multipliers


def test_the_multiplier_is_exactly_the_rounded_power_of_two():
    s_in, s_out = 0.0213, 0.0871
    base = np.array([0.0011, 0.0042, 0.00093, 0.017], np.float32)
    scales, mult, shift = pot_multipliers(s_in, base, s_out)
    exponent = np.rint(np.log2(s_in * base.astype(np.float64) / s_out))
    assert np.all(mult == 1 << 30) and np.array_equal(shift, exponent + 1)
    # the weight scale moves by at most a factor sqrt(2), so that s_in * s_w / s_out is 2**S
    ratio = scales / base
    assert np.all((ratio > 2 ** -0.5 - 1e-6) & (ratio < 2 ** 0.5 + 1e-6))
    real = s_in * scales.astype(np.float64) / s_out
    assert np.allclose(real, np.exp2(exponent), rtol=1e-6)
    # TFLite's multiplier for those scales is the same power of two, written another way
    m, s = conv_multipliers(s_in, scales, s_out)
    assert np.allclose(m * np.exp2(s.astype(np.float64) - 31), np.exp2(exponent), rtol=1e-6)


@pytest.mark.parametrize("exponent", [-1, -2, -7, -13, -20])
def test_single_rounding_with_two_to_the_30_is_a_rounded_shift(exponent):
    rng = np.random.default_rng(-exponent)
    acc = rng.integers(-(2 ** 31), 2 ** 31, size=4000, dtype=np.int64)
    acc[:8] = [0, 1, -1, 2 ** 30, -(2 ** 31), 2 ** 31 - 1, 1 << (-exponent - 1), -(1 << (-exponent - 1))]
    got = multiply_by_quantized_multiplier_single(acc, 1 << 30, exponent + 1)
    want = (acc + (1 << (-exponent - 1))) >> -exponent  # round half up, as the FPGA shifter
    assert np.array_equal(got, want)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.dw = torch.nn.Conv2d(2, 6, 3, padding=1), torch.nn.Conv2d(6, 6, 3, groups=6)
        self.fc = torch.nn.Linear(6 * 3 * 3, 4)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.dw(torch.relu(self.conv(x)))), 1))


POT = {"conv": {"requantization": "POWER_OF_TWO"}, "fc": {"requantization": "power_of_two"}}


def compressed():
    from tests.ops._torch import calibrated

    return calibrated(Net, (64, 2, 5, 5), POT)


def test_pot_layers_export_shifts_and_agree_with_the_fake_quantized_model():
    from tests.ops._torch import assert_codes_agree

    m, x = compressed()
    g = m.to_graph(x[:1])
    ops = {op.name: op for op in g.ops}
    for name in ("conv", "fc"):
        assert np.all(np.asarray(ops[name].attrs["multiplier"]) == 1 << 30), name
        assert ops[name].a.rounding == "single"
    assert ops["dw"].a.multiplier is not None and np.any(np.asarray(ops["dw"].attrs["multiplier"]) != 1 << 30)
    assert_codes_agree(m, g, x)


def test_pot_model_exports_and_verifies_on_c_and_hls(tmp_path):
    from dmxgen.api import save

    from tests.torch.conftest import export_and_verify

    m, x = compressed()
    export_and_verify(save(m, tmp_path / "pot.pt2", x), tmp_path / "c", "--target", "c,hls")


@pytest.mark.parametrize("config, message", [
    ({"dw": {"requantization": "POWER_OF_TWO"}},
     r"layer 'dw' \(Conv2d\): requantization POWER_OF_TWO is for Linear and Conv1d/Conv2d layers with groups=1"),
    ({"fc": {"requantization": "SHIFT"}}, r"expected MULTIPLIER or POWER_OF_TWO, got 'SHIFT'"),
])
def test_pot_refusals(config, message):
    import dmxgen
    from dmxgen.errors import DmxError

    with pytest.raises(DmxError, match=message):
        dmxgen.Model(Net()).transform(config)
