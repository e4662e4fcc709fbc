"""PyTorch models with several inputs and several outputs (tuple, list, dict returns): the fake-quantized
model computes the integer reference's codes for every output, the graph names its inputs after forward()'s
parameters and its outputs after the tuple positions / dict keys, save / load keep the structure, and
`dmxgen export` + `dmxgen verify` are bit-exact on the host; what stays unsupported is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxgen
from dmxgen.api import Model, reference_outputs, save
from dmxgen.errors import DmxError
from dmxgen.frontends import load as load_graph
from dmxgen.graph.fixedpoint import quantize_float

from .conftest import export_and_verify, exporter_available

needs_c = pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")


class TwoInputs(nn.Module):
    """An image branch (conv, flattened) and a vector branch (Linear), added, then a head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.img = nn.Linear(2 * 4 * 4, 8)
        self.vec = nn.Linear(5, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, image, features):
        a = self.img(torch.relu(self.conv(image)).flatten(1))
        return self.head(F.relu(a + self.vec(features)))


class TwoOutputs(nn.Module):
    """A tuple return: the conv feature map (an intermediate the head also reads) and the logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        feat = torch.relu(self.conv(x))
        return feat, self.fc(feat.flatten(1))


class DictOutputs(nn.Module):
    """A dict return from two inputs; 'hidden' is also the input of both heads."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(3, 8)
        self.cls, self.box = nn.Linear(8, 5), nn.Linear(8, 2)

    def forward(self, a, b):
        hidden = torch.tanh(self.a(a) * self.b(b))
        return {"logits": self.cls(hidden), "box": torch.sigmoid(self.box(hidden)), "hidden": hidden}


class ListOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        h = self.fc(x)
        return [h[:, :2], torch.relu(h)]


def calibrated_multi(make, *shapes, config=None, seed: int = 0):
    """(Model of make() calibrated on seeded randn inputs of `shapes`, the inputs): _torch.calibrated for
    several inputs."""
    torch.manual_seed(seed)
    xs = tuple(torch.randn(*s) for s in shapes)
    m = Model(make().eval()).transform(config)
    with m.calibrating():
        m(*xs)
    return m.eval(), xs


def assert_all_codes_agree(m, g, xs) -> list[np.ndarray]:
    """Every output of Model.output_codes(*xs) == the integer reference's, bit for bit, in graph order."""
    ref = reference_outputs(g, m.quantize_input(*xs))
    ref = list(ref) if isinstance(ref, tuple) else [ref]
    fq = m.output_codes(*xs)
    fq = list(fq.values()) if isinstance(fq, dict) else list(fq) if isinstance(fq, tuple) else [fq]
    assert len(ref) == len(fq) == len(g.outputs)
    for name, r, f in zip(g.outputs, ref, fq):
        r = r.astype(np.int64)
        assert r.shape == f.shape, name
        assert np.array_equal(r, f), f"output {name!r}: {int((r != f).sum())} of {r.size} codes differ"
        assert len(np.unique(r)) > 2, f"output {name!r} is (nearly) constant: the comparison says little"
    return ref


def test_two_inputs_are_named_after_forward_parameters_and_agree_bit_exactly():
    m, xs = calibrated_multi(TwoInputs, (64, 1, 6, 6), (64, 5))
    g = m.to_graph(*(x[:1] for x in xs))
    assert g.inputs == ["image", "features"]
    assert g.tensors["image"].shape == (1, 6, 6, 1) and g.tensors["features"].shape == (1, 5)  # NHWC, plain
    assert len(g.outputs) == 1 and g.outputs == ["head"]  # one output: its layer's name, as before
    codes = m.quantize_input(*xs)
    assert isinstance(codes, tuple) and [c.shape for c in codes] == [(64, 6, 6, 1), (64, 5)]
    for c, x, name in zip(codes, xs, g.inputs):  # each input on its own grid, TFLite's QUANTIZE rounding
        q = g.tensors[name].quant
        real = x.permute(0, 2, 3, 1).numpy() if x.dim() == 4 else x.numpy()
        assert np.array_equal(c, quantize_float(real, q.s, q.zp, "int8")), name
    assert g.tensors["image"].quant.s != g.tensors["features"].quant.s
    assert isinstance(m.output_codes(*xs), np.ndarray)  # a tensor return stays one array
    assert_all_codes_agree(m, g, xs)


def test_tuple_outputs_with_an_intermediate_used_later():
    m, (x,) = calibrated_multi(TwoOutputs, (64, 2, 4, 4))
    g = m.to_graph(x[:1])
    assert g.outputs == ["output0", "output1"]
    assert g.tensors["output0"].shape == (1, 4, 4, 3)  # the NCHW feature map, NHWC in the graph
    assert any("output0" in op.inputs for op in g.ops)  # the head reads the output tensor itself
    codes = m.output_codes(x)
    assert isinstance(codes, tuple) and len(codes) == 2 and codes[0].shape == (64, 4, 4, 3)
    assert [q.qparams() for q in m.output_quants()] == [
        (float(g.tensors[n].quant.s), g.tensors[n].quant.zp) for n in g.outputs]
    with pytest.raises(DmxError, match=r"the model has 2 outputs; output_quant\(\) needs one"):
        m.output_quant()
    assert_all_codes_agree(m, g, (x,))


def test_dict_outputs_are_named_by_their_keys():
    m, xs = calibrated_multi(DictOutputs, (64, 6), (64, 3))
    g = m.to_graph(*(x[:1] for x in xs))
    assert g.inputs == ["a", "b"] and g.outputs == ["logits", "box", "hidden"]
    # the key 'box' names the sigmoid's output; the Linear 'box' had that tensor name and moves aside
    assert (g.producer("box").kind, g.producer("box_1").name) == ("lut", "box")
    assert g.producer("logits").name == "cls" and g.producer("hidden").kind == "lut"
    codes = m.output_codes(*xs)
    assert isinstance(codes, dict) and list(codes) == ["logits", "box", "hidden"]
    assert_all_codes_agree(m, g, xs)


def test_list_outputs_are_a_tuple_of_codes():
    m, (x,) = calibrated_multi(ListOutputs, (64, 4))
    g = m.to_graph(x[:1])
    assert g.outputs == ["output0", "output1"]
    assert isinstance(m.output_codes(x), tuple)
    assert_all_codes_agree(m, g, (x,))


class ShadowingName(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, input, unused):  # fx calls the first placeholder input_1; an input no layer reads
        return self.fc(input)


def test_input_names_are_the_parameter_names_even_when_fx_renames_them():
    m, xs = calibrated_multi(ShadowingName, (32, 4), (32, 2))
    g = m.to_graph(*(x[:1] for x in xs))
    assert g.inputs == ["input", "unused"] and not g.consumers("unused")
    assert_all_codes_agree(m, g, xs)


def test_calibration_records_every_input():
    torch.manual_seed(0)
    m = Model(DictOutputs().eval()).transform()
    a, b = torch.randn(32, 6), 5 * torch.randn(32, 3)
    with m.calibrating():
        m(a, b)
    qa, qb = m.input_quants()
    assert qa.calibrated and qb.calibrated
    # each input's range is its own data's: b is five times wider
    assert qb.qparams()[0] > 3 * qa.qparams()[0]
    with pytest.raises(DmxError, match=r"the model has 2 inputs; input_quant\(\) needs one"):
        m.input_quant()
    m2 = Model(DictOutputs().eval()).transform()
    with m2.calibrating():
        m2(a, b=b)  # by name: the same inputs, and the first batch's export check sees both
    assert [q.qparams() for q in m2.input_quants()] == [q.qparams() for q in m.input_quants()]
    assert m2.example_shapes == ((1, 6), (1, 3))  # the graph the export check built took both


@pytest.fixture(scope="module")
def saved_dict(tmp_path_factory):
    """(model, inputs, .pt2 path) of DictOutputs, saved once for the tests below."""
    m, xs = calibrated_multi(DictOutputs, (64, 6), (64, 3))
    return m, xs, save(m, tmp_path_factory.mktemp("dict") / "dict.pt2", xs)


def test_save_and_load_keep_several_inputs_and_outputs(saved_dict):
    m, xs, path = saved_dict
    g0, g1 = m.to_graph(*(x[:1] for x in xs)), load_graph(path)
    assert (g1.inputs, g1.outputs) == (g0.inputs, g0.outputs)
    assert [(o.name, o.kind, o.inputs, o.outputs) for o in g0.ops] == [(o.name, o.kind, o.inputs, o.outputs)
                                                                       for o in g1.ops]
    prog = dmxgen.load(path)
    one = tuple(x[3:4] for x in xs)
    with torch.no_grad():
        got, want = prog(*one), m(*one)
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_save_needs_one_example_per_input(tmp_path):
    m, xs = calibrated_multi(DictOutputs, (16, 6), (16, 3))
    with pytest.raises(DmxError, match=r"the model takes 2 input\(s\) \(a, b\); the example input has 1; pass "
                                       r"them as a tuple"):
        save(m, tmp_path / "m.pt2", xs[0])
    assert not (tmp_path / "m.pt2").exists()
    with pytest.raises(DmxError, match=r"quantize_input needs 2 tensor\(s\), one per input \(a, b\); got Tensor"):
        m.quantize_input(xs[0])


@needs_c
def test_two_inputs_export_and_verify_with_npz_vectors(tmp_path):
    m, xs = calibrated_multi(TwoInputs, (64, 1, 6, 6), (64, 5))
    path = save(m, tmp_path / "two.pt2", xs)
    npz = tmp_path / "in.npz"
    np.savez(npz, image=xs[0][:3].numpy(), features=xs[1][:3].numpy())  # 1 channel: NCHW bytes are NHWC
    out = export_and_verify(path, tmp_path / "c", "--vectors", "2", "--input", str(npz))
    header = (out / "model.h").read_text()
    assert "int dmx_model_run(const dmx_input0_t *in_image, const dmx_input1_t *in_features, " \
           "dmx_output0_t *out_head);" in header
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["image", "features"]
    with np.load(out / manifest["test_vectors"]["inputs"]) as ins, \
            np.load(out / manifest["test_vectors"]["expected"]) as exp:
        # the float .npz inputs were quantized as the model quantizes them, and the stored answers are its codes
        codes = m.quantize_input(*(x[:3] for x in xs))
        assert np.array_equal(ins["image"][2:].reshape(3, 6, 6, 1), codes[0])
        assert np.array_equal(ins["features"][2:].reshape(3, 5), codes[1])
        assert np.array_equal(exp["head"][2:].reshape(3, 3), m.output_codes(*(x[:3] for x in xs)))


@needs_c
def test_tuple_outputs_export_and_verify(tmp_path):
    m, (x,) = calibrated_multi(TwoOutputs, (64, 2, 4, 4))
    out = export_and_verify(save(m, tmp_path / "two_out.pt2", x), tmp_path / "c", "--vectors", "3")
    assert "dmx_output0_t *out_output0, dmx_output1_t *out_output1);" in (out / "model.h").read_text()


@needs_c
def test_dict_outputs_export_and_verify_through_the_python_api(saved_dict, tmp_path):
    from dmxgen.targets import export

    path = saved_dict[2]
    manifest = export(path, tmp_path / "c", n_vectors=3)
    assert [o["name"] for o in manifest["outputs"]] == ["logits", "box", "hidden"]
    assert "*out_logits, dmx_output1_t *out_box, dmx_output2_t *out_hidden);" in (tmp_path / "c/model.h").read_text()
    export_and_verify(path, tmp_path / "cli", "--vectors", "3")


@pytest.mark.slow
@needs_c
def test_dict_outputs_from_two_inputs_pass_hls_csim(saved_dict, tmp_path):
    from dmxgen.backends.hls_csim import run_csim
    from dmxgen.targets import export

    export(saved_dict[2], tmp_path, targets=("hls",), n_vectors=4)
    r = run_csim(tmp_path, opt="-O1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASS: 4 vectors, 60 output values bit-exact" in r.stdout  # 5 + 2 + 8 values each


@pytest.mark.firmware
def test_dict_outputs_from_two_inputs_run_on_the_m55(saved_dict, tmp_path):
    from dmxgen import firmware
    from dmxgen.targets import export

    if firmware.missing_tools():
        pytest.skip(f"firmware tools missing: {firmware.missing_tools()}")
    manifest = export(saved_dict[2], tmp_path, n_vectors=1)
    result = firmware.run(tmp_path)
    assert result.passed, result.verdict
    with np.load(tmp_path / manifest["test_vectors"]["expected"]) as e:
        want = np.concatenate([e[o["name"]][0].reshape(-1) for o in manifest["outputs"]])
    assert result.outputs == want.tolist()  # logits, box, hidden, in graph order


# -- refusals ------------------------------------------------------------------------------------------

class _Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.1)


class KeywordOnly(_Base):
    def forward(self, x, *, y):
        return self.fc(x) + y


class VarArgs(_Base):
    def forward(self, *xs):
        return self.fc(xs[0])


class Default(_Base):
    def forward(self, x, mask=None):
        return self.fc(x)


class Nested(_Base):
    def forward(self, x):
        h = self.fc(x)
        return h, (torch.relu(h), torch.tanh(h))


class SizeOut(_Base):
    def forward(self, x):
        h = self.fc(x)
        return h, h.size(1)


class BadKey(_Base):
    def forward(self, x):
        return {"class-logits": self.fc(x)}


class InputOut(_Base):
    def forward(self, x):
        return x, self.fc(x)


class Twice(_Base):
    def forward(self, x):
        h = self.fc(x)
        return {"a": h, "b": h}


class PassedThrough(_Base):
    def forward(self, x):
        return self.fc(x), self.drop(x)


def _refusal(net, *xs) -> str:
    with pytest.raises(DmxError) as e:
        m = Model(net).transform()
        with m.calibrating():
            m(*xs)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("net, message", [
    (KeywordOnly(), "KeywordOnly (torch): forward() parameter 'y' is keyword-only; graph inputs are positional "
                    "parameters"),
    (VarArgs(), "VarArgs (torch): forward() parameter *xs takes any number of inputs; give each input its own "
                "parameter"),
    (Default(), "Default (torch): forward() parameter 'mask' has a default (None); every parameter is a graph "
                "input, so it cannot be left out"),
    (Nested(), "Nested (torch): output 'output1' is a tuple; nested outputs are not supported, return one flat "
               "tuple, list or dict of tensors"),
    (SizeOut(), "SizeOut (torch): output 'output1' is 'size', not a tensor; every output must be a tensor "
                "computed by a layer"),
    (BadKey(), "BadKey (torch): forward() returns a dict with key 'class-logits'; the keys name the model's "
               "outputs and must be C identifiers ([A-Za-z_][A-Za-z0-9_]*)"),
    (InputOut(), "InputOut (torch): output 'output0' is the input 'x' itself; an output needs a layer between "
                 "it and the inputs"),
    (Twice(), "Twice (torch): output 'b' is the same tensor as output 'a'; return each tensor once"),
])
def test_unsupported_inputs_and_outputs_are_refused_at_transform(net, message):
    assert _refusal(net) == message


def test_an_input_passed_through_as_an_output_is_refused_on_the_first_calibration_batch():
    assert _refusal(PassedThrough(), torch.randn(8, 4)) == (
        "PassedThrough (torch): output 'output1' is the input 'x' passed through; an output needs a layer "
        "between it and the inputs")
