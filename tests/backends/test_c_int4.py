"""INT4 weights (op.attrs["weight_bits"] == 4) are stored two per byte and unpacked by the dense kernels.

Checked to the bit on the host against the reference, with odd and even row
lengths, and the header arrays are half the int8 size.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen.api import Model
from dmxgen.targets import export
from dmxgen.backends.c_layers import pack_int4
from dmxgen.targets import verify_folder
from dmxgen.frontends.tflite import load_tflite
from tests.backends.conftest import assert_bit_exact, needs_gcc
from tests.backends.test_c_ops import conv_model, fc_model

pytestmark = needs_gcc


def _int4(graph):
    """Clip the graph's conv/FC weights to [-7, 7] and mark them INT4, as the torch frontend does."""
    for op in graph.ops:
        if op.kind in ("conv2d", "fully_connected"):
            w = graph.weights(op)
            w.data = np.clip(w.data, -7, 7).astype(np.int8)
            op.attrs["weight_bits"] = 4
    return graph


def _values_len(folder, c_name):
    text = (folder / "headers" / f"{c_name}.h").read_text()
    return int(re.search(rf"dmx_l_{c_name}__values\[(\d+)\]", text).group(1))


def test_pack_int4_nibble_order():
    m = np.array([[1, -2, 7], [-7, 0, -1]], dtype=np.int8)
    packed = pack_int4(None, m).view(np.uint8)
    # row 0: (1 | -2<<4), (7 | pad 0); row 1: (-7 | 0<<4), (-1 | pad)
    assert packed.tolist() == [0x01 | 0xE0, 0x07, 0x09, 0x0F]


@pytest.mark.parametrize("cin,in_zp", [(40, 3), (41, -128), (17, 127)])
def test_int4_fully_connected_bit_exact_and_packed(tmp_path, cin, in_zp):
    graph = _int4(load_tflite(fc_model(tmp_path, "fc", batches=2, cin=cin, cout=13, in_zp=in_zp)))
    manifest = export(graph, tmp_path / "out", fmt="dense")
    assert_bit_exact(verify_folder(tmp_path / "out"))
    layer = manifest["layers"][0]
    packed = 13 * ((cin + 1) // 2)
    assert layer["weight_bytes"] == packed and layer["dense_weight_bytes"] == 13 * cin
    assert _values_len(tmp_path / "out", layer["c_name"]) == packed
    if cin % 2 == 0:
        assert 2 * layer["weight_bytes"] == layer["dense_weight_bytes"]


@pytest.mark.parametrize("padding,k,cin", [("SAME", (3, 3), 3), ("VALID", (1, 1), 8)])
def test_int4_conv_bit_exact_and_packed(tmp_path, padding, k, cin):
    model = conv_model(tmp_path, "conv", in_shape=(1, 7, 6, cin), cout=10, k=k, stride=(1, 1), padding=padding,
                       in_zp=-5)
    graph = _int4(load_tflite(model))
    manifest = export(graph, tmp_path / "out", fmt="dense")
    assert_bit_exact(verify_folder(tmp_path / "out"))
    layer = manifest["layers"][0]
    cols = k[0] * k[1] * cin
    assert layer["weight_bytes"] == 10 * ((cols + 1) // 2)
    assert manifest["weight_bytes"] == layer["weight_bytes"]


def test_int4_sparse_formats_keep_int8_values(tmp_path):
    graph = _int4(load_tflite(fc_model(tmp_path, "fc", cin=64, cout=16, sparsity=0.8)))
    manifest = export(graph, tmp_path / "out", fmt="dcsr", min_sparsity=0.5)
    assert manifest["layers"][0]["format"] == "dcsr"
    assert_bit_exact(verify_folder(tmp_path / "out"))


def test_int4_torch_model_exports_packed(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 7))
    x = torch.randn(32, 3, 5, 5)
    m = Model(net).transform({"type:Conv2d": {"weight_format": "INT4"}, "type:Linear": {"weight_format": "INT4"}})
    with m.calibrating():
        m(x)
    graph = m.eval().to_graph(x[:1])
    assert [op.attrs.get("weight_bits") for op in graph.ops if op.kind in ("conv2d", "fully_connected")] == [4, 4]
    manifest = export(graph, tmp_path / "out", fmt="dense")
    assert_bit_exact(verify_folder(tmp_path / "out"))
    for layer in manifest["layers"]:
        if layer["op"] in ("conv2d", "fully_connected"):
            rows, cols = layer["matrix"]
            assert layer["weight_bytes"] == rows * ((cols + 1) // 2)


def test_int4_weights_out_of_range_are_refused(tmp_path):
    from dmxgen.errors import DmxError

    graph = load_tflite(fc_model(tmp_path, "fc", cin=8, cout=3))
    graph.ops[0].attrs["weight_bits"] = 4  # weights still span about [-127, 127]
    with pytest.raises(DmxError, match=r"layer '.*' \(fully_connected\): weight_bits=4 but weights span"):
        export(graph, tmp_path / "out", fmt="dense")
    assert not (tmp_path / "out").exists()
