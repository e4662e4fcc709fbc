"""Fixtures for the PyTorch frontend tests: small nets, a quickly trained digits model."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)  # tiny layers; threads only contend with the other test worker


@pytest.fixture(autouse=True)
def _torch_nn_restored():
    """A test that calls dmxgen.aware() and fails (or forgets aware(False)) leaves torch.nn as it was."""
    yield
    from dmxgen.compress.aware import aware

    aware(False)


def compare(model, x: torch.Tensor, graph=None):
    """(reference codes, fake-quant codes) on x, both int64 in the graph's layout."""
    from dmxgen.api import reference_outputs

    model.eval()
    graph = graph if graph is not None else model.to_graph(x[:1])
    ref = reference_outputs(graph, model.quantize_input(x)).astype(np.int64)
    return ref, model.output_codes(x).reshape(ref.shape)


def exporter_available() -> bool:
    try:
        import dmxgen.backends.c  # noqa: F401
        import dmxgen.commands.export  # noqa: F401
    except ImportError:
        return False
    return True


def export_and_verify(model_file: Path, out: Path, *options: str) -> Path:
    """`dmxgen export` then `dmxgen verify OUT` (host C with sanitizers vs the reference)."""
    cli = [sys.executable, "-m", "dmxgen.cli"]
    r = subprocess.run(cli + ["export", str(model_file), "-o", str(out), *options], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(cli + ["verify", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "BIT-EXACT" in r.stdout, r.stdout + r.stderr
    return out


@pytest.fixture(scope="session")
def lenet():
    from models import lenet

    return lenet


@pytest.fixture(scope="session")
def digits(lenet):
    return lenet.digits_data(0)


@pytest.fixture(scope="session")
def digits_model(lenet, digits):
    """(float net, compressed model) trained briefly with the demo's config."""
    net = lenet.train_float(digits, epochs=6, seed=0)
    model = lenet.compress(copy.deepcopy(net), digits, lenet.CONFIG, epochs=3, seed=0, steps=(0.3,))
    return net, model
