"""nn.TransformerEncoderLayer / nn.TransformerEncoder through the PyTorch flow (compress/transformer.py).

The rewrite computes torch's eval function (its fast path, torch._transformer_encoder_layer_fwd),
the fake-quantized model's output codes are the integer reference's, the model exports and
verifies bit-exact on the host, and masks are refused naming the layer.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.compress.transformer import without_transformers
from dmxgen.errors import DmxError
from tests.ops._torch import assert_codes_agree, calibrated

from .conftest import export_and_verify, exporter_available


def encoder_layer(d=16, heads=2, ff=32, act="relu", norm_first=False, eps=1e-5):
    return nn.TransformerEncoderLayer(d, heads, ff, dropout=0.1, activation=act, layer_norm_eps=eps,
                                      batch_first=True, norm_first=norm_first)


def encoder(layers=1, final_norm=False, d=16, **kw):
    norm = nn.LayerNorm(d) if final_norm else None
    return nn.TransformerEncoder(encoder_layer(d=d, **kw), layers, norm=norm, enable_nested_tensor=False)


class Classifier(nn.Module):
    """Tokens -> embedding -> two encoder layers -> mean over the tokens -> Linear."""

    def __init__(self, features=6, d=24, classes=5):
        super().__init__()
        self.embed = nn.Linear(features, d)
        self.encoder = encoder(layers=2, final_norm=True, d=d, heads=4, ff=48, act="gelu", norm_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def _randomized(net: nn.Module) -> nn.Module:
    """LayerNorm gamma/beta away from 1/0, so the test sees them (torch initializes them trivially)."""
    torch.manual_seed(7)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return net.eval()


FLOAT_CASES = {  # (make, input shape)
    "post_norm_relu": (lambda: encoder_layer(act="relu"), (3, 5, 16)),
    "pre_norm_gelu": (lambda: encoder_layer(d=32, heads=4, ff=64, act="gelu", norm_first=True), (3, 8, 32)),
    "post_norm_F_gelu": (lambda: encoder_layer(d=24, heads=3, ff=48, act=F.gelu, eps=1e-3), (3, 4, 24)),
    "pre_norm_F_relu": (lambda: encoder_layer(act=F.relu, norm_first=True), (3, 6, 16)),
    "gelu_module": (lambda: encoder_layer(act=nn.GELU(), norm_first=True), (3, 6, 16)),
    "silu_module": (lambda: encoder_layer(act=nn.SiLU()), (3, 6, 16)),  # no fast path: torch's python path
    "two_layers_final_norm": (lambda: encoder(layers=2, final_norm=True), (3, 6, 16)),
    "two_layers_pre_norm": (lambda: encoder(layers=2, norm_first=True, act="gelu"), (3, 6, 16)),
    "classifier": (Classifier, (3, 7, 6)),
}


@pytest.mark.parametrize("name", list(FLOAT_CASES))
def test_rewrite_computes_torchs_eval_function(name):
    make, shape = FLOAT_CASES[name]
    torch.manual_seed(0)
    net = _randomized(make())
    x = torch.randn(*shape)
    with torch.no_grad():  # eval + no_grad: torch takes its fused fast path where it can
        want = net(x)
        got = without_transformers(net)(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_rewrite_keeps_the_parameter_names_and_leaves_the_callers_net_alone():
    net = Classifier().eval()
    rewritten = without_transformers(net)
    names = {n for n, _ in rewritten.named_modules()}
    assert {"encoder.layers.0.linear1", "encoder.layers.1.norm2", "encoder.layers.0.self_attn.out_proj",
            "encoder.layers.1.activation", "encoder.norm"} <= names
    assert isinstance(net.encoder, nn.TransformerEncoder)
    assert rewritten.encoder.layers[0].linear1 is not net.encoder.layers[0].linear1  # a copy
    plain = nn.Sequential(nn.Linear(4, 4))
    assert without_transformers(plain) is plain


QUANT_CASES = {  # (make, input shape, config)
    "post_norm_relu": (lambda: encoder(act="relu"), (48, 6, 16), None),
    "post_norm_gelu": (lambda: encoder(d=24, heads=3, ff=48, act="gelu"), (48, 5, 24), None),
    "pre_norm_relu": (lambda: encoder(d=32, heads=4, ff=64, act=F.relu, norm_first=True), (48, 4, 32), None),
    "pre_norm_gelu": (lambda: encoder(act=F.gelu, norm_first=True, eps=1e-3), (48, 8, 16), None),
    "layer_alone": (lambda: encoder_layer(act="gelu", norm_first=True), (48, 6, 16), None),
    "two_layers_final_norm": (lambda: encoder(layers=2, final_norm=True), (48, 6, 16),
                              {"layers.0.linear1": {"weight_format": "INT4"},
                               "layers.1.linear2": {"weight_sparseness": "BTOPK{2:4}"}}),
    "classifier": (Classifier, (48, 7, 6), None),
}


def _ops(g) -> list[str]:
    return [op.kind for op in g.ops]


@pytest.mark.parametrize("name", list(QUANT_CASES))
def test_fake_quantized_codes_equal_the_integer_reference(name):
    make, shape, config = QUANT_CASES[name]
    m, x = calibrated(lambda: _randomized(make()), shape, config)
    g = m.to_graph(x[:1])
    ref = assert_codes_agree(m, g, x)
    assert np.unique(ref).size > 10, "a vacuous case: the outputs barely vary"
    layers = 2 if name in ("two_layers_final_norm", "classifier") else 1
    kinds = _ops(g)
    assert kinds.count("batch_matmul") == 2 * layers and kinds.count("softmax_gemmlowp") == layers
    norms = 2 * layers + (name in ("two_layers_final_norm", "classifier"))
    assert kinds.count("layer_norm") == norms
    assert kinds.count("fully_connected") == 6 * layers + 2 * (name == "classifier")  # q k v out linear1 linear2
    if config is None:  # int8 everywhere: a few percent from the float encoder (torch's own, m.float_net)
        with torch.no_grad():
            want, got = m.float_net(x), m(x)
        assert float((got - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt()) < 0.05


def test_config_names_address_the_encoders_own_layers():
    make, shape, config = QUANT_CASES["two_layers_final_norm"]
    m, x = calibrated(lambda: _randomized(make()), (8,) + shape[1:], config)
    g = m.to_graph(x[:1])
    fcs = {op.name: op for op in g.ops if op.kind == "fully_connected"}
    assert fcs["layers.0.linear1"].attrs.get("weight_bits") == 4
    assert fcs["layers.1.linear1"].attrs.get("weight_bits", 8) == 8  # only the named layer moved
    w = g.tensor("layers.1.linear2.weight").data.reshape(16, -1, 4)  # [out, groups of 4 inputs]
    assert ((w != 0).sum(axis=-1) <= 2).all() and (w != 0).sum() > 0
    w0 = g.tensor("layers.0.linear2.weight").data
    assert (w0 != 0).mean() > 0.9  # the other layer's linear2 stays dense


def test_every_parameter_of_the_encoder_learns_through_the_quantized_forward():
    make, shape, config = QUANT_CASES["classifier"]
    m, x = calibrated(lambda: _randomized(make()), (16,) + shape[1:], config)
    m.train()
    m(x).square().mean().backward()
    params = dict(m.named_parameters())
    assert any(".self_attn.q." in n for n in params) and any(".layers.1.norm2." in n for n in params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values()), \
        [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]


def test_training_updates_the_float_net_and_a_second_transform_keeps_the_trained_weights():
    """The rewritten copy is the Model's float net: a step of training moves its weights, and a
    second transform builds from them (not from the caller's module, which is left as it was)."""
    make, shape, config = QUANT_CASES["classifier"]
    m, x = calibrated(lambda: _randomized(make()), (16,) + shape[1:], config)
    w = dict(m.float_net.named_parameters())["encoder.layers.0.linear1.weight"]
    before = w.detach().clone()
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m(x).square().mean().backward()
    opt.step()
    assert not torch.equal(w.detach(), before)  # the compressed network trains the float net's parameters
    m.transform(config)
    after = dict(m.float_net.named_parameters())["encoder.layers.0.linear1.weight"]
    assert after is w and not torch.equal(after.detach(), before)


@pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")
def test_classifier_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import load, save

    make, shape, config = QUANT_CASES["classifier"]
    m, x = calibrated(lambda: _randomized(make()), shape, config)
    path = save(m, tmp_path / "encoder.pt2", x)
    assert torch.equal(load(path)(x[:1]), m(x[:1]))
    export_and_verify(path, tmp_path / "c")


class Masked(nn.Module):
    def __init__(self, call, wrap_in_encoder=True):
        super().__init__()
        layer = encoder_layer()
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False) if wrap_in_encoder else layer
        self.call = call

    def forward(self, x):
        return self.call(self.enc, x)


CAUSAL = torch.triu(torch.full((6, 6), float("-inf")), diagonal=1)
PADDING = torch.zeros(4, 6, dtype=torch.bool)


@pytest.mark.parametrize("wrap, call, message", [
    (True, lambda e, x: e(x, mask=CAUSAL), r"layer 'enc' \(TransformerEncoder\): masks are not supported"),
    (True, lambda e, x: e(x, src_key_padding_mask=PADDING),
     r"layer 'enc' \(TransformerEncoder\): masks are not supported"),
    (True, lambda e, x: e.layers[0](x, is_causal=True, src_mask=CAUSAL),
     r"layer 'enc.layers.0' \(TransformerEncoderLayer\): masks are not supported"),
    (False, lambda e, x: e(x, src_mask=CAUSAL), r"layer 'enc' \(TransformerEncoderLayer\): masks are not supported"),
], ids=["encoder_mask", "encoder_padding_mask", "layer_causal", "layer_mask"])
def test_masks_are_refused_naming_the_layer(wrap, call, message):
    with pytest.raises(DmxError, match=message):
        calibrated(lambda: Masked(call, wrap), (4, 6, 16))


def test_sequence_first_layout_is_refused_naming_the_layer():
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 1, enable_nested_tensor=False)

        def forward(self, x):
            return self.enc(x)

    with pytest.raises(DmxError, match=r"layer 'enc.layers.0' \(TransformerEncoderLayer\): only batch_first=True"):
        calibrated(SeqFirst, (6, 4, 16))
