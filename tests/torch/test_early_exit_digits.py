"""The digits early-exit CNN (models/lenet_ee.py): on all 360 test images the fake-quantized
PyTorch EarlyExit and the integer reference (dmxgen's graph of the stages and heads, run entry by
entry with graph/exit_policy.py) take the same exit and return the same int8 logits."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import dmxgen
from dmxgen.graph import exit_policy as ep
from dmxgen.reference.early_exit import run_early_exit

from .conftest import ROOT


@pytest.fixture(scope="session")
def digits_ee(digits):
    from models import lenet_ee

    s = lenet_ee.split(digits, seed=0)
    return s, lenet_ee.train_early_exit(s, epochs=5, head_epochs=4, seed=0)


def test_validation_split_is_carved_from_the_training_images(digits_ee, digits):
    s, _ = digits_ee
    assert len(s.train.x_train) + len(s.x_val) == len(digits.x_train) and len(s.train.x_test) == 360
    train = {t.numpy().tobytes() for t in s.train.x_train}
    assert not any(t.numpy().tobytes() in train for t in s.x_val)


@pytest.mark.parametrize("kind", ["margin", "softmax"])
def test_every_test_image_takes_the_same_exit_with_the_same_bytes(digits_ee, kind):
    s, ee = digits_ee
    x = s.train.x_test
    from models import lenet_ee

    choice = dmxgen.choose_thresholds(ee, lenet_ee.batches(s.x_val, s.y_val, seed=None), max_accuracy_drop=0.01,
                                      kind=kind)
    assert choice.accuracy >= choice.baseline_accuracy - 0.01
    codes = ee.logit_codes(x)
    conf = [ep.confidences(kind, c, sc) for c, sc in zip(codes[:-1], ee.exit_scales())]
    spread = ep.ExitPolicy(kind, tuple(int(np.quantile(c, q)) for c, q in zip(conf, (0.6, 0.3))))
    graph = ee.to_graph(x[:1])
    inputs = ee.quantize_input(x)
    for policy in (choice.policy, spread):  # the chosen thresholds, and ones that use every exit
        ee.policy = policy
        taken, out = ee.decide(x)
        for i in range(len(x)):
            k, logits = run_early_exit(graph, policy, inputs[i:i + 1])
            assert k == taken[i], i
            assert np.array_equal(logits.reshape(-1).astype(np.int64), out[i]), i
    assert set(taken.tolist()) == {0, 1, 2}


@pytest.mark.slow  # trains the full recipe: about 40 s on two shared cores
def test_train_digits_ee_script(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train_digits_ee.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    test, val = summary["test"], summary["validation"]
    assert test["reference_agrees"] == test["images"] == 360
    assert val["accuracy"] >= val["baseline_accuracy"] - 0.01
    assert test["average_macs_early_exit"] < test["macs_final_only"]
    assert sum(test["exit_fractions"]) == pytest.approx(1.0)
    assert "same exit and int8 logits on 360/360 test images" in r.stdout
