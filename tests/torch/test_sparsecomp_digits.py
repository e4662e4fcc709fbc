"""The demo's recipe (tools/train_digits.py --weights-fraction 0.1, dCSR) measured in the exported manifest."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT, exporter_available


@pytest.mark.slow  # about a minute on two shared cores
@pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")
def test_demo_recipe_beats_the_hand_tuned_config_without_losing_accuracy(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train_digits.py"), "--out", str(tmp_path),
                        "--weights-fraction", "0.1", "--storage", "dcsr"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    history = json.loads((tmp_path / "history.json").read_text())
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(tmp_path / "lenet_digits.pt2"),
                        "--format", "dcsr", "-o", str(tmp_path / "c"), "--vectors", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["weight_bytes"] + manifest["param_bytes"] == summary["exported_bytes"] == history["final_bytes"]
    assert summary["target_bytes"] == manifest["param_bytes"] + round(manifest["dense_weight_bytes"] / 10)
    # the hand-tuned models/lenet_config.yaml: 4.41x at 2.3 points below float (README)
    assert manifest["dense_weight_bytes"] / manifest["weight_bytes"] > 4.41
    assert summary["integer_accuracy"] >= summary["float_accuracy"] - 0.01
    assert summary["same_class"] == 1.0 and summary["max_logit_diff"] == 0
