"""A transformed model is still an nn.Module: moving it between devices and dtypes must work."""
from __future__ import annotations

import torch
from torch import nn

from dmxgen.api import Model

from .conftest import compare


def test_to_device_keeps_the_model_exact():
    """QuantWeighted once defined `_apply`, shadowing nn.Module._apply, so `.to()` crashed."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    model = Model(net).transform({"type:Conv2d": {"weight_format": "INT8(PER_CHANNEL)"}})
    x = torch.randn(8, 1, 8, 8)
    with model.calibrating():
        model(x)
    model = model.to("cpu")
    ref, fq = compare(model, x)
    assert (ref == fq).all()
