"""tools/train_digits_ee.py end to end (issue 13's example): the accuracies, exit counts and M55
instructions it prints are recomputed from the folder it exported (the stored vectors, `dmxgen verify`,
the firmware's own per-vector lines), not taken from its summary.json."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from dmxgen import firmware

from .conftest import ROOT

SCRIPT = ROOT / "tools" / "train_digits_ee.py"
FEW_EPOCHS = ("--epochs", "3", "--head-epochs", "2")
_PCT = r"(\d+\.\d)%"


def run_script(out, *flags) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *FEW_EPOCHS, *flags],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def printed(pattern: str, stdout: str) -> tuple[str, ...]:
    m = re.search(pattern, stdout, re.M)
    assert m, f"{pattern!r} not in:\n{stdout}"
    return m.groups()


def pct(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}"


def check_host_numbers(out, stdout: str) -> np.ndarray:
    """The printed int8 accuracies, exits and thresholds against the exported folder; returns its exits."""
    from dmxgen.targets import verify_folder

    folder = out / "export"
    labels = np.load(out / "y_test.npy")
    baseline = np.load(folder / "test_vectors" / "expected.npy").reshape(len(labels), -1)
    with np.load(folder / "test_vectors" / "expected_ee.npz") as z:
        exits, ee_logits = z["exit"], z["output"]
    assert len(labels) == len(exits) == 360
    (without,) = printed(rf"^test accuracy without early exit: float {_PCT}, int8 {_PCT}$", stdout)[1:]
    assert without == pct(int((baseline.argmax(1) == labels).sum()), 360)
    (with_,) = printed(rf"^test accuracy with early exit \(int8\): {_PCT} ", stdout)
    assert with_ == pct(int((ee_logits.argmax(1) == labels).sum()), 360)
    counts = [int((exits == k).sum()) for k in range(3)]
    line = printed(r"^test exits: pool1 (\d+) \(\S+\), pool2 (\d+) \(\S+\), final (\d+) \(\S+\)$", stdout)
    assert [int(v) for v in line] == counts
    policy = json.loads((folder / "manifest.json").read_text())["early_exit"]
    (thresholds,) = printed(r"^policy: margin, thresholds \[([-\d, ]+)\]", stdout)
    assert [int(v) for v in thresholds.split(",")] == list(policy["thresholds"])
    val, base = printed(rf"\(validation: {_PCT} vs {_PCT}\)$", stdout)
    assert float(val) >= float(base) - 1.0 - 0.1  # at most 1 point lost on validation (printed to 0.1)
    report = verify_folder(folder, n_inputs=0, input_files=(out / "x_test.npy",))  # host C, ASan/UBSan
    assert report["bit_exact"] and report["early_exit"]["bit_exact"] and report["inputs"] == 360
    assert list(report["early_exit"]["exits"]) == counts
    assert "model.c bit-exact, model_ee.c bit-exact" in stdout
    return exits


@pytest.mark.slow  # trains a few epochs and exports: about 30 s on two shared cores
def test_no_sim_summary_matches_the_exported_folder(tmp_path):
    r = run_script(tmp_path, "--no-sim")
    check_host_numbers(tmp_path, r.stdout)
    assert "M55: not run (--no-sim)" in r.stdout
    assert not list((tmp_path / "export").glob("build-cortex-m55*"))


@pytest.mark.slow
@pytest.mark.firmware
@pytest.mark.skipif(bool(firmware.missing_tools()),
                    reason=f"needs {', '.join(firmware.missing_tools())} (tools/setup.sh)")
def test_m55_summary_matches_the_firmware_per_vector_counts(tmp_path):
    r = run_script(tmp_path)
    exits = check_host_numbers(tmp_path, r.stdout)
    without, with_, ratio, counts = printed(
        r"^M55 \(dmxgen bench, 360 vectors, PASS\): average instructions per inference (\d+) without early exit, "
        r"(\d+) with it \((\d+\.\d+)x fewer\); exits \[([\d, ]+)\]$", r.stdout)
    assert [int(v) for v in counts.split(",")] == [int((exits == k).sum()) for k in range(3)]
    run = firmware.run(tmp_path / "export", timeout=600)  # the firmware again: its per-vector lines
    rows = re.findall(r"^EE (\d+) exit=(\d+) expected=(\d+) run=(\d+) ee=(\d+)$", run.log, re.M)
    assert run.passed and len(rows) == 360
    assert [int(row[1]) for row in rows] == exits.tolist()
    mean_run, mean_ee = (np.mean([int(row[i]) for row in rows]) for i in (3, 4))
    assert abs(int(without) - mean_run) <= 1 and abs(int(with_) - mean_ee) <= 1  # averaged in ticks, then rounded
    assert ratio == f"{int(without) / int(with_):.2f}"
    extra, ee_o, base_o = (int(v) for v in printed(
        r"^exit branches' extra flash: (\d+) bytes \(model_ee\.o (\d+) - model\.o (\d+);", r.stdout))
    assert extra == ee_o - base_o > 0


def test_train_digits_early_exit_flag_runs_the_early_exit_example(tmp_path):
    """`tools/train_digits.py --early-exit ARGS` is train_digits_ee.py with ARGS (issue 13's spelling)."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train_digits.py"), "--early-exit", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--head-epochs" in r.stdout and "--no-sim" in r.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "train_digits.py"), "--early-exit",
                          "--out", str(tmp_path / "f"), "--policy", "nonsense"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nonsense" in bad.stderr  # the ee script's own argument check
