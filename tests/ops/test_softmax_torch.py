"""Softmax from PyTorch: nn.Softmax, F.softmax, torch.softmax and Tensor.softmax as softmax_gemmlowp.

The fake-quantized layer runs the op's integer kernel (the reference's numpy code) once its input
grid has a range, so its codes are the exported ones; its output grid is the op's fixed 1/256, -128.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.errors import DmxError

from .test_batch_matmul import assert_codes_equal, calibrated


class Classifier(nn.Module):
    """An MLP ending in nn.Softmax over the classes."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10), nn.Softmax(dim=1))

    def forward(self, x):
        return self.body(x)


class ConvChannels(nn.Module):
    """F.softmax over the channels of a Conv output: the graph's last (NHWC) dim, no transpose."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x):
        return F.softmax(self.conv(x), dim=1)


class ConvWidth(nn.Module):
    """Tensor.softmax over the last dim of a Conv output: moved to torch's order first."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x).softmax(-1)


class Tokens(nn.Module):
    """torch.softmax over the features of [N, T, D] tokens, then a Linear."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.softmax(self.a(x) * 2.0, -1))


CASES = {"classifier": (Classifier, (64, 12)), "conv_channels": (ConvChannels, (16, 3, 5, 6)),
         "conv_width": (ConvWidth, (16, 3, 4, 7)), "tokens": (Tokens, (32, 5, 6))}


def model(name: str):
    net_cls, shape = CASES[name]
    torch.manual_seed(1)
    x = torch.randn(*shape) * 2
    return calibrated(net_cls(), x), x


@pytest.mark.parametrize("name", list(CASES))
def test_softmax_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    m, x = model(name)
    g = assert_codes_equal(m, x, "softmax_gemmlowp")
    sm = next(op for op in g.ops if op.kind == "softmax_gemmlowp")
    out = g.tensors[sm.outputs[0]].quant
    assert (float(out.s), out.zp) == (1 / 256, -128)
    # over W: to torch's order for the softmax, and back to NHWC, as a 4-D output is handed over
    perms = [op.a.perm for op in g.ops if op.kind == "transpose"]
    assert perms == ([(0, 3, 1, 2), (0, 2, 3, 1)] if name == "conv_width" else [])


def test_the_softmax_grid_survives_calibration_and_training_is_straight_through():
    m, x = model("classifier")
    assert m.output_quant().qparams() == (1 / 256, -128)
    m.train()
    xs = x.clone().requires_grad_(True)
    y = m(xs)
    codes = y.detach() * 256
    assert torch.equal(codes, torch.round(codes)), "training output is off the 1/256 grid"
    y[:, 0].sum().backward()
    assert xs.grad is not None and float(xs.grad.abs().sum()) > 0


def test_softmax_without_a_dim_is_refused_naming_the_layer():
    with pytest.raises(DmxError, match=r"^layer '1' \(softmax\): give softmax an explicit integer dim \(got None\)$"):
        calibrated(nn.Sequential(nn.Linear(4, 6), nn.Softmax()), torch.randn(8, 4))


def test_softmax_with_a_dtype_is_refused_naming_the_layer():
    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 6)

        def forward(self, x):
            return torch.softmax(self.a(x), -1, torch.float64)

    with pytest.raises(DmxError, match=r"^layer 'softmax' \(softmax\): a dtype argument is not supported$"):
        calibrated(Wide(), torch.randn(8, 4))


def test_softmax_over_another_dim_is_refused_in_one_line():
    class OverTokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 6)

        def forward(self, x):  # [N, T, D], softmax over T
            return torch.softmax(self.a(x), dim=1)

    with pytest.raises(DmxError, match=r"^layer 'softmax': softmax over dim 1 of a 3-D tensor is not supported; "
                                       r"only over the last dim \(or the channels of a Conv output\)$"):
        calibrated(OverTokens(), torch.randn(8, 5, 6))


def test_a_saved_softmax_model_loads_in_a_fresh_process(tmp_path):
    """dmxgen.load registers the custom ops the saved forward calls (compress/kernel_ops.py)."""
    from dmxgen.api import save

    m, x = model("classifier")
    path = save(m, tmp_path / "classifier.pt2", x)
    np.save(tmp_path / "x.npy", x[:1].numpy())  # the saved program takes batch 1
    code = ("import dmxgen, numpy as np, torch, sys; m = dmxgen.load(sys.argv[1]); "
            "x = torch.from_numpy(np.load(sys.argv[2])); np.save(sys.argv[3], m(x).detach().numpy())")
    r = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with torch.no_grad():
        assert np.array_equal(np.load(tmp_path / "y.npy"), m(x[:1]).numpy())


def test_torch_softmax_classifier_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save

    from tests.torch.conftest import export_and_verify

    m, x = model("classifier")
    export_and_verify(save(m, tmp_path / "classifier.pt2", x), tmp_path / "c")
