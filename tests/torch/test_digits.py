"""The digits CNN: the integer graph and the fake-quantized model agree on every test image,
and the generated C (host build) equals the reference to the bit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmxgen.api import save

from .conftest import ROOT, compare, export_and_verify, exporter_available


def test_reference_matches_fake_quant_on_every_test_image(digits_model, digits):
    net, model = digits_model
    ref, fq = compare(model, digits.x_test)
    assert (ref.argmax(1) == fq.argmax(1)).all()  # same class on every image
    assert (np.abs(ref - fq) <= 1).mean() >= 0.99  # the bar ...
    assert np.array_equal(ref, fq)  # ... and in fact the same integers
    y = digits.y_test.numpy()
    assert (ref.argmax(1) == y).mean() > 0.8  # a briefly trained, 90%-pruned net still classifies


def test_configured_sparsity_is_exact(digits_model):
    _, model = digits_model
    for name, layer in model.weighted_layers().items():
        n = layer.weight_mask.numel()
        assert int(layer.weight_mask.sum()) == int(np.floor(0.1 * n + 0.5)), name


@pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")
def test_export_dcsr_and_verify_on_host(digits_model, digits, tmp_path):
    _, model = digits_model
    pt2 = save(model, tmp_path / "lenet.pt2", digits.x_test[:1])
    codes = tmp_path / "test.npy"
    np.save(codes, model.quantize_input(digits.x_test[:16]))
    out = export_and_verify(pt2, tmp_path / "c", "--format", "dcsr", "--input", str(codes))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weight_bytes"] < manifest["dense_weight_bytes"] / 3  # 90% zeros in dCSR


@pytest.mark.slow  # 25 s: trains LeNet twice over
def test_train_digits_script_reuses_its_checkpoints(tmp_path):
    script = ROOT / "tools" / "train_digits.py"
    args = [sys.executable, str(script), "--out", str(tmp_path), "--epochs", "2", "--finetune", "1"]
    first = subprocess.run(args, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "lenet_digits.pt2").exists() and (tmp_path / "digits_test.npy").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["same_class"] == 1.0 and summary["max_logit_diff"] == 0
    second = subprocess.run(args, capture_output=True, text=True)
    assert second.returncode == 0 and "reusing the checkpoints" in second.stdout
    assert json.loads((tmp_path / "summary.json").read_text())["integer_accuracy"] == summary["integer_accuracy"]
    assert Path(tmp_path / "digits_test.npy").stat().st_size > 0
