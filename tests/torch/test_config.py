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
            return F.log_softmax(x, dim=1)  # F.softmax is supported (compress/softmax.py)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(DmxError, match="'log_softmax' .*is not supported"):
        Model(Softmaxed()).transform()
    with pytest.raises(DmxError, match="cannot trace Branchy"):
        Model(Branchy()).transform()


# -- type:DepthwiseConv2d / DepthwiseConv1d and N:M that does not fit -----------------------------
class Separable(nn.Module):
    """A depthwise conv between ordinary ones (1-D too), and a grouped conv that is not depthwise."""

    def __init__(self):
        super().__init__()
        self.stem, self.dw, self.pw = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 6, 1)
        self.grouped = nn.Conv2d(6, 6, 1, groups=2)
        self.dw1, self.pw1 = nn.Conv1d(6, 6, 3, groups=6), nn.Conv1d(6, 4, 1)

    def forward(self, x):
        y = self.grouped(self.pw(self.dw(self.stem(x))))
        return self.pw1(self.dw1(y.flatten(2)))


def test_depthwise_type_selectors_address_depthwise_convs_only():
    m = Model(Separable()).transform({"type:DepthwiseConv2d": {"weight_format": "INT4"},
                                      "type:Conv2d": {"weight_format": "INT8(PER_TENSOR)"},
                                      "type:DepthwiseConv1d": {"weight_sparseness": "TOPK{0.5}"}})
    cfg = m.layer_configs
    # depthwise rules apply after type:Conv2d whatever their order in the config
    assert cfg["dw"].weight == NumFormat(4)
    assert [cfg[n].weight for n in ("stem", "pw", "grouped")] == [NumFormat(8, "PER_TENSOR")] * 3
    assert cfg["dw1"].sparseness.density == 0.5 and cfg["pw1"].sparseness.kind == "dense"
    assert cfg["dw1"].weight is None


def test_depthwise_selector_without_a_depthwise_conv_matches_nothing():
    with pytest.raises(DmxError, match=r"config: 'type:DepthwiseConv2d' matches no layer of the model"):
        Model(Small()).transform({"type:DepthwiseConv2d": {"weight_format": "INT4"}})


def test_nm_that_does_not_fit_a_layer_skips_it_with_a_warning():
    # stem: 3 input channels (no multiple of 4): skipped; pw: 8, kept at 2:4
    with pytest.warns(UserWarning, match=r"layer 'stem' \(Conv2d\): BTOPK\{2:4\} skipped, its input dimension "
                                         r"\(3\) is not a multiple of 4; the layer stays dense"):
        m = Model(Separable()).transform({"re:stem|pw": {"weight_sparseness": "BTOPK{2:4}"}})
    assert m.layer_configs["stem"].sparseness.kind == "dense"
    assert "BTOPK{2:4} skipped" in m.layer_configs["stem"].warnings[0]
    assert m.layer_configs["pw"].sparseness.spelled() == "BTOPK{2:4}" and not m.layer_configs["pw"].warnings
    assert m.sparsity()["stem"] == 0.0 and m.sparsity()["pw"] == pytest.approx(0.5)


def test_nm_strict_keeps_the_error():
    with pytest.raises(DmxError, match=r"layer 'stem' \(Conv2d\): BTOPK\{2:4\} needs the input dimension \(3\)"):
        Model(Separable()).transform({"stem": {"weight_sparseness": "BTOPK{2:4}", "strict": True}})


@pytest.mark.parametrize("body, message", [
    ({"strict": True}, r"config: 'stem': strict needs weight_sparseness in the same rule"),
    ({"weight_sparseness": "BTOPK{2:4}", "strict": "yes"}, r"config: 'stem': strict: expected true or false"),
])
def test_strict_errors(body, message):
    with pytest.raises(DmxError, match=message):
        Model(Separable()).transform({"stem": body})
