"""What cannot be exported is refused at Model.transform, in one short line, with the later stage's words."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.api import Model
from dmxgen.errors import DmxError
from dmxgen.graph import Graph, Op, QuantParams, Tensor


def _refusal(net) -> str:
    with pytest.raises(DmxError) as e:
        Model(net).transform()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


class ChannelMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=1)  # over channels, not over H and W


class LastDimMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(-2))  # -2 of an NCL tensor is C


class LinearOnConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)))  # over L of an NCL tensor


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 3)

    def forward(self, x):
        h = self.fc(x)
        return self.a(h), self.b(h)


class BatchAndWidthMean(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.conv, self.dims = nn.Conv2d(3, 4, 3), dims

    def forward(self, x):
        return self.conv(x).mean(dim=self.dims)


def test_mean_over_the_batch_or_dims_that_are_not_neighbours_is_refused_at_transform():
    # over the channels (ChannelMean, LastDimMean) it exports: tests/torch/test_pool_options.py
    Model(ChannelMean()).transform()
    Model(LastDimMean()).transform()
    want = "layer 'mean': mean, amax and amin are supported over neighbouring dims, not over the batch dim"
    assert _refusal(BatchAndWidthMean((0, 2, 3))) == want
    assert _refusal(BatchAndWidthMean((1, 3))) == want


def test_linear_on_a_conv1d_tensor_is_refused_at_transform():
    assert _refusal(LinearOnConv1d()) == ("layer 'fc': Linear over the last dim of a NCL tensor is not supported; "
                                          "flatten it first")


def test_two_outputs_are_refused_neither_by_the_torch_path_nor_by_the_c_backend():
    from dmxgen.backends.c import check_exportable

    g = Graph(source="TwoHeads (torch)")
    for name in ("x", "a", "b"):
        g.add_tensor(Tensor(name, (1, 4), "int8", QuantParams(np.array([0.1], np.float32), np.array([0]))))
    g.inputs, g.outputs = ["x"], ["a", "b"]
    g.ops += [Op("ha", "reshape", ["x"], ["a"]), Op("hb", "reshape", ["x"], ["b"])]
    check_exportable(g)  # the C backend takes several outputs now
    m = Model(TwoHeads()).transform()  # several outputs: tests/torch/test_multi_io.py
    assert [q.label for q in m.output_quants()] == ["a", "b"]


class Fine2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean((-2, -1)))  # spatial, as negative dims


class Fine1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc, self.head = nn.Conv1d(3, 4, 3), nn.Linear(12, 2), nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(torch.flatten(y, 1)) + self.head(y.mean(-1))  # flattened; mean over L


@pytest.mark.parametrize("net, shape", [(Fine2d(), (8, 3, 5, 5)), (Fine1d(), (8, 3, 5))], ids=["2d", "1d"])
def test_what_export_accepts_still_transforms(net, shape):
    x = torch.randn(shape)
    m = Model(net).transform()
    with m.calibrating():
        m(x)
    assert "fully_connected" in [op.kind for op in m.to_graph(x[:1]).ops]


# -- item 12: the not-supported message is short and names the layer, its module path and the reason --


class Custom(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1)


class Deep(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.stem = nn.Linear(4, 4)
        self.blocks = nn.Sequential(nn.Identity(), nn.Sequential(inner))

    def forward(self, x):
        return self.blocks(self.stem(x))


@pytest.mark.parametrize("inner, start, reason", [
    (nn.RNN(4, 4), "layer 'blocks.1.0' (RNN) is not supported", "no integer kernel"),  # LSTM is (batch_first)
    (nn.LogSoftmax(dim=1), "layer 'blocks.1.0' (LogSoftmax) is not supported", "no integer kernel"),  # Softmax is
    (Custom(), "layer 'cumsum' in module 'blocks.1.0' (cumsum) is not supported", "no integer kernel"),
])
def test_not_supported_is_one_short_line_pointing_at_the_table(inner, start, reason):
    class Wrapped(Deep):
        def forward(self, x):
            y = self.blocks(self.stem(x))
            return y[0] if isinstance(y, tuple) else y  # RNN returns (output, state)

    msg = _refusal(Wrapped(inner))
    assert msg.startswith(start) and reason in msg
    assert msg.endswith("see docs/compression.md#supported-layers")
    assert len(msg) < 200 and "Conv2d" not in msg  # no list of everything supported


def test_the_support_table_anchor_exists():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "compression.md").read_text()
    assert '<a id="supported-layers"></a>\n## Supported layers\n' in doc  # the anchor the messages point at


def test_size_dependent_refusals_come_on_the_first_calibration_batch():
    """transform cannot see sizes; the first batch inside calibrating() builds the graph and refuses
    with export's own message, before any fine-tuning."""
    class SqueezedPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.conv1d = nn.Conv2d(3, 4, 3), nn.Conv1d(4, 2, 1)

        def forward(self, x):
            y = F.adaptive_avg_pool2d(self.conv(x), 4)  # [N, 4, 6, 6] -> 4 x 4: windows of 1 and 2
            return torch.flatten(self.conv1d(torch.flatten(y, 2)), 1)

    x = torch.randn(8, 3, 8, 8)
    m = Model(SqueezedPool()).transform()
    with pytest.raises(DmxError) as first_batch:
        with m.calibrating():
            m(x)
    m2 = Model(SqueezedPool()).transform()
    m2._export_checked = True  # as before: calibrating accepts it and export refuses it
    with m2.calibrating():
        m2(x)
    with pytest.raises(DmxError) as export:
        m2.to_graph(x[:1])
    assert str(first_batch.value) == str(export.value)
    assert str(export.value).startswith("layer 'adaptive_avg_pool2d': adaptive pooling from [6, 6] to [4, 4] "
                                        "has unequal windows")
