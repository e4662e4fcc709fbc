"""The README's list of PyTorch layers is generated from the frontend's tables, and is current."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dmxgen.compress import torch_support, trace
from dmxgen.errors import DmxError

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_list_is_the_generated_one():
    text = (ROOT / "README.md").read_text()
    assert torch_support.with_list(text) == text, "README.md is stale: write torch_support.with_list(text) back"


def _listed_modules() -> list[type]:
    names = {n for _, listed, _ in torch_support.rows() for n in listed}
    return [getattr(nn, n[3:]) for n in sorted(names) if n.startswith("nn.") and hasattr(nn, n[3:])]


# constructor arguments of the listed modules that take some
ARGS = {nn.Linear: (4, 3), nn.Conv1d: (2, 3, 1), nn.Conv2d: (2, 3, 1), nn.ConvTranspose2d: (2, 3, 2),
        nn.BatchNorm1d: (3,), nn.BatchNorm2d: (3,), nn.LayerNorm: (4,), nn.MaxPool1d: (2,), nn.MaxPool2d: (2,),
        nn.AvgPool1d: (2,), nn.AvgPool2d: (2,), nn.AdaptiveAvgPool1d: (1,), nn.AdaptiveAvgPool2d: (1,),
        nn.Upsample: (None, 2), nn.MultiheadAttention: (4, 2), nn.LSTM: (4, 3, 1, True, True), nn.GRU: (4, 3, 1, True, True)}
REWRITTEN = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)  # before tracing


@pytest.mark.parametrize("cls", [c for c in _listed_modules() if not issubclass(c, REWRITTEN)],
                         ids=lambda c: c.__name__)
def test_every_listed_module_is_classified(cls):
    m = cls(*ARGS.get(cls, ()))
    assert trace._module_kind("layer", m, set())  # a kind, not a refusal


def test_a_module_not_listed_is_refused_naming_the_layer():
    names = {n for _, listed, _ in torch_support.rows() for n in listed}
    assert "nn.Bilinear" not in names
    with pytest.raises(DmxError, match=r"layer 'head' \(Bilinear\) is not supported by the torch frontend"):
        trace._module_kind("head", nn.Bilinear(2, 2, 2), set())


def test_every_listed_function_is_in_a_table_the_classifier_reads():
    listed = {n for _, names, _ in torch_support.rows() for n in names}
    assert {"F.relu", "torch.cat", "x.permute", "a @ b", "F.interpolate", "torch.amax"} <= listed
    assert "torch.sort" not in listed
    assert torch.sort not in trace.ELEMENTWISE_FUNCTIONS
