"""The demo's recipe (tools/demo.py RECIPE: tools/train_digits.py --weights-fraction 0.1, exported with
--format auto) measured in the exported manifest: the issue's "done when" figure."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from .conftest import ROOT, exporter_available


def demo_recipe() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("dmxgen_demo", ROOT / "tools" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.RECIPE


@pytest.mark.slow  # about a minute on two shared cores
@pytest.mark.skipif(not exporter_available(), reason="the C backend (dmxgen export) is not available")
def test_demo_recipe_reaches_a_tenth_of_dense_int8_within_a_point_of_float(tmp_path):
    recipe = demo_recipe()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train_digits.py"), "--out", str(tmp_path),
                        "--weights-fraction", "0.1", *recipe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    history = json.loads((tmp_path / "history.json").read_text())
    storage = recipe[recipe.index("--storage") + 1]
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(tmp_path / "lenet_digits.pt2"),
                        "--format", storage, "-o", str(tmp_path / "c"), "--vectors", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["weight_bytes"] + manifest["param_bytes"] == summary["exported_bytes"] == history["final_bytes"]
    assert summary["target_bytes"] == manifest["param_bytes"] + round(manifest["dense_weight_bytes"] / 10)
    assert history["reached"]
    # the bar: the exported weights are at most a tenth of the same model's dense int8 weights ...
    assert manifest["weight_bytes"] * 10 <= manifest["dense_weight_bytes"]
    assert manifest["dense_weight_bytes"] == summary["weight_bytes_dense"]  # the float model's own layers
    # ... at no more than 1 point of test accuracy below the float model (the integer reference's)
    assert summary["integer_accuracy"] >= summary["float_accuracy"] - 0.01
    assert summary["same_class"] == 1.0 and summary["max_logit_diff"] == 0
