"""Config parsing and matching: good configs resolve, bad ones fail with one line naming key and layer."""
from __future__ import annotations

import pytest
import torch.nn.functional as F
from torch import nn

from dmxgen.api import Model
from dmxgen.compress.config import load_config
from dmxgen.compress.formats import NumFormat, parse_format
from dmxgen.errors import DmxError


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * 4 * 4, 10)
        self.gelu = nn.GELU()

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return self.gelu(self.fc(torch_flatten(x)))


def torch_flatten(x):
    return x.flatten(1)


@pytest.mark.parametrize("text, want", [
    ("INT8", NumFormat(8)), ("int4", NumFormat(4)), ("INT8(PER_TENSOR)", NumFormat(8, "PER_TENSOR")),
    ("INT4(PER_CHANNEL)", NumFormat(4, "PER_CHANNEL")), ("XP[8,0](CSN)", NumFormat(8, "PER_TENSOR")),
    ("XP[4,0](CSN)", NumFormat(4, "PER_TENSOR")), ("SAME", None)])
def test_weight_formats_parse(text, want):
    assert parse_format(text, "weight") == want


@pytest.mark.parametrize("text, slot, words", [
    ("INT7", "weight", "INT4 or INT8"), ("XP[8,3](CSN)", "weight", "XP[b,0]"), ("XP[8,0](CUN)", "weight", "(CSN)"),
    ("FP16", "weight", "malformed"), ("INT8(PER_CHANNEL)", "input", "per tensor"), ("INT8", "bias", "INT32"),
    ("INT8(PER_BLOCK)", "weight", "malformed")])
def test_bad_formats(text, slot, words):
    with pytest.raises(ValueError, match=None) as e:
        parse_format(text, slot)
    assert words in str(e.value)


def _error(config) -> str:
    with pytest.raises(DmxError) as e:
        Model(Small()).transform(config)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_names_key_and_layer():
    msg = _error({"fc": {"weight_fromat": "INT8"}})
    assert "'fc'" in msg and "'weight_fromat'" in msg and "weight_format" in msg


def test_malformed_format_names_key_and_layer():
    msg = _error({"conv": {"weight_format": "INT8[PER_CHANNEL]"}})
    assert "'conv'" in msg and "weight_format" in msg and "INT8[PER_CHANNEL]" in msg


def test_malformed_sparseness_names_key_and_layer():
    msg = _error({"fc": {"weight_sparseness": "TOPK{1.5}"}})
    assert "'fc'" in msg and "weight_sparseness" in msg and "(0, 1]" in msg


def test_unknown_layer_lists_layers():
    msg = _error({"fc9": {"weight_format": "INT8"}})
    assert "'fc9'" in msg and "matches no layer" in msg and "fc (Linear)" in msg


def test_folded_batchnorm_and_fused_relu_point_to_their_host():
    assert "folded into 'conv'" in _error({"bn": {"output_format": "INT8"}})
    assert "fused into 'conv'" in _error({"act": {"output_format": "INT8"}})


def test_field_that_does_not_apply_to_named_layer():
    msg = _error({"gelu": {"weight_format": "INT8"}})
    assert "'gelu'" in msg and "weight_format does not apply" in msg


def test_conflicting_tensor_formats():
    msg = _error({"conv": {"output_format": "INT8"}, "fc": {"input_format": "INT4"}})
    assert "'fc'" in msg and "conflicts" in msg


def test_precedence_type_then_regex_then_name():
    m = Model(Small()).transform({"fc": {"weight_format": "INT4"},
                                  "type:Linear": {"weight_format": "INT8", "weight_sparseness": "TOPK{0.5}"},
                                  "re:c.*": {"weight_format": "INT4(PER_TENSOR)"}})
    assert m.layer_configs["fc"].weight == NumFormat(4)
    assert m.layer_configs["fc"].sparseness.density == 0.5
    assert m.layer_configs["conv"].weight == NumFormat(4, "PER_TENSOR")
    layers = m.weighted_layers()
    assert layers["fc"].wfmt == NumFormat(4, "PER_CHANNEL")  # the slot's default granularity fills in
    assert layers["conv"].wfmt == NumFormat(4, "PER_TENSOR")


def test_yaml_file_and_its_errors(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text('"type:Conv2d":\n  weight_sparseness: BTOPK{1:1}\nfc:\n  output_format: XP[8,0](CSN)\n')
    m = Model(Small()).transform(good)
    assert m.layer_configs["fc"].output == NumFormat(8, "PER_TENSOR")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fc: [1, 2\n")
    with pytest.raises(DmxError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(DmxError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(DmxError, match="expected a mapping"):
        load_config({"fc": "INT8"})


def test_unsupported_layer_is_one_line_naming_it():
    class WithLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 4)

        def forward(self, x):
            return self.rnn(x)[0]

    with pytest.raises(DmxError) as e:
        Model(WithLSTM()).transform()
    assert "'rnn' (LSTM) is not supported" in str(e.value) and "\n" not in str(e.value)


def test_unsupported_function_and_untraceable_forward():
    class Softmaxed(nn.Module):
        def forward(self, x):
            return F.softmax(x, dim=1)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(DmxError, match="'softmax' .*is not supported"):
        Model(Softmaxed()).transform()
    with pytest.raises(DmxError, match="cannot trace Branchy"):
        Model(Branchy()).transform()
