"""`dmxgen verify OUT` of a folder exported from a pickled checkpoint (`export --trust-pickle`)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dmxgen.backends.host import have_compiler  # noqa: E402

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")
DMXGEN = [sys.executable, "-m", "dmxgen.cli"]


def run(*args):
    return subprocess.run(DMXGEN + [str(a) for a in args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A dmxgen Model saved with torch.save (a pickle), exported with --trust-pickle."""
    from dmxgen.api import Model

    tmp = tmp_path_factory.mktemp("pickle")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4))
    x = torch.randn(16, 8)
    m = Model(net).transform({})
    with m.calibrating():
        m(x)
    m.eval()
    pk = tmp / "model.pt"
    torch.save(m, pk)
    out = tmp / "out"
    r = run("export", pk, "--trust-pickle", "-o", out, "--vectors", "4")
    assert r.returncode == 0, r.stderr
    npy = tmp / "x.npy"
    np.save(npy, x[:3].numpy())
    return out, npy


def test_verify_uses_the_stored_vectors_without_unpickling(exported):
    out, _ = exported
    r = run("verify", out, "--inputs", "4", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["bit_exact"] and result["expected_from"] == "stored" and result["inputs"] == 4


def test_verify_trust_pickle_reloads_the_model(exported):
    out, npy = exported
    r = run("verify", out, "--trust-pickle", "--seed", "5", "--input", npy, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["bit_exact"] and result["expected_from"] == "model"
    assert result["inputs"] == 8 + 3 and result["layers"]


def test_what_needs_the_model_asks_for_an_option_verify_has(exported):
    out, npy = exported
    r = run("verify", out, "--input", npy)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a pickle" in lines[0] and "--trust-pickle" in lines[0], r.stderr
    assert "--trust-pickle" in run("verify", "--help").stdout
