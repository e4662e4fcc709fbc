"""dmxgen.save writes a .pt2 that loads without unpickling; pickles are refused unless trusted."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from dmxgen import reference
from dmxgen.api import Model, load, save
from dmxgen.errors import DmxError
from dmxgen.frontends import load as load_graph
from dmxgen.frontends.torch import load_torch

DMXGEN = [sys.executable, "-m", "dmxgen.cli"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 6)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.fc(torch.relu(self.conv(x)).flatten(1)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    x = torch.randn(32, 2, 3, 3)
    m = Model(Net()).transform({"fc": {"weight_format": "INT4", "weight_sparseness": "BTOPK{2:4}"}})
    with m.calibrating():
        m(x)
    m.eval()
    path = save(m, tmp_path_factory.mktemp("save") / "net.pt2", x)
    return m, x, path


def test_saved_graph_equals_the_model_graph(saved):
    m, x, path = saved
    g0, g1 = m.to_graph(x[:1]), load_graph(path)
    assert [(o.name, o.kind, o.inputs, o.outputs) for o in g0.ops] == [(o.name, o.kind, o.inputs, o.outputs)
                                                                       for o in g1.ops]
    for name, t in g0.tensors.items():
        u = g1.tensors[name]
        assert (t.shape, t.dtype) == (u.shape, u.dtype)
        assert (t.data is None and u.data is None) or (np.array_equal(t.data, u.data) and t.data.dtype == u.data.dtype)
        if t.quant is not None:
            assert np.array_equal(t.quant.scale, u.quant.scale) and np.array_equal(t.quant.zero_point,
                                                                                    u.quant.zero_point)
    for a, b in zip(g0.ops, g1.ops):
        assert a.attrs.keys() == b.attrs.keys()
        for k in a.attrs:
            assert np.array_equal(np.asarray(a.attrs[k]), np.asarray(b.attrs[k])), k
    fc = next(o for o in g1.ops if o.kind == "fully_connected")
    assert fc.attrs["weight_bits"] == 4 and np.abs(g1.tensors["fc.weight"].data).max() <= 7
    codes = m.quantize_input(x[:4])
    for i in range(4):
        assert np.array_equal(reference.run(g0, [codes[i:i + 1]])["act"], reference.run(g1, [codes[i:i + 1]])["act"])


def test_load_returns_the_fake_quantized_program(saved):
    m, x, path = saved
    prog = load(path)
    with torch.no_grad():
        assert torch.equal(prog(x[:1]), m(x[:1]))


def test_saving_is_deterministic(saved, tmp_path):
    m, x, path = saved
    again = save(m, tmp_path / "again.pt2", x)
    name = "net/extra/dmxgen_graph.json"
    with zipfile.ZipFile(path) as za, zipfile.ZipFile(again) as zb:
        a, b = za.read(name), zb.read(name.replace("net/", "again/"))
    assert a == b


def test_pickled_checkpoint_is_refused_with_the_reason(saved, tmp_path):
    m, x, _ = saved
    pk = tmp_path / "model.pt"
    torch.save(m, pk)
    with pytest.raises(DmxError) as e:
        load_torch(pk)
    assert "pickled" in str(e.value) and "arbitrary code" in str(e.value) and "--trust-pickle" in str(e.value)
    graph = load_torch(pk, trust_pickle=True)
    assert [o.kind for o in graph.ops] == [o.kind for o in m.to_graph(x[:1]).ops]
    legacy = tmp_path / "legacy.pth"
    torch.save(m.state_dict(), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(DmxError, match="arbitrary code"):
        load_torch(legacy)
    with pytest.raises(DmxError, match="state_dict has no model structure"):
        load_torch(legacy, trust_pickle=True)
    plain = tmp_path / "plain.pt"
    torch.save(Net(), plain)
    with pytest.raises(DmxError, match="has no quantization"):
        load_torch(plain, trust_pickle=True)


def test_cli_refuses_a_pickle_in_one_line(saved, tmp_path):
    m, _, _ = saved
    pk = tmp_path / "model.pt"
    torch.save(m, pk)
    r = subprocess.run(DMXGEN + ["inspect", str(pk)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "arbitrary code" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, to make a TorchScript file
def test_foreign_archives_are_refused(tmp_path):
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(DmxError, match="TorchScript"):
        load_torch(scripted)
    exported = tmp_path / "plain.pt2"
    torch.export.save(torch.export.export(nn.Linear(2, 2), (torch.zeros(1, 2),)), str(exported))
    with pytest.raises(DmxError, match="without dmxgen's quantization data"):
        load_torch(exported)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello world")
    with pytest.raises(DmxError, match="not a PyTorch model file"):
        load_torch(junk)
    broken = tmp_path / "broken.pt2"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("broken/extra/dmxgen_graph.json", '{"format": "dmxgen-graph", "version": 1, "tensors": [{}]}')
    with pytest.raises(DmxError, match="corrupt dmxgen graph"):
        load_torch(broken)
