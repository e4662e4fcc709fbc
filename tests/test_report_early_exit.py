"""`dmxgen report` on an early-exit export: the share of stored vectors per exit (from the folder's
expected exits, no bench needed), the `#plot-exits` figure and the summary line, and, once `dmxgen
bench` has run, its averages and the exit branches' extra flash. A plain model's report has none."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.firmware._fw_harness import needs_tools

from .test_report import cli, report_json, small_export  # noqa: F401  (small_export: a fixture)

torch = pytest.importorskip("torch")

import dmxgen  # noqa: E402
from dmxgen.targets import export  # noqa: E402
from tests.backends.test_early_exit_export import spread_policy  # noqa: E402

N_VECTORS = 48


@pytest.fixture(scope="module")
def ee_export(tmp_path_factory) -> tuple[Path, tuple[int, ...]]:
    """models/lenet_ee.py's network, untrained (fast: the exits only need to differ, not be right),
    calibrated, thresholds spread over exits and final, exported with 48 random images as vectors."""
    from models import lenet_ee

    d = tmp_path_factory.mktemp("report_ee")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(N_VECTORS, 1, 8, 8)
    ee = dmxgen.EarlyExit(lenet_ee.DeepLeNet().eval(), exits=lenet_ee.heads(), policy="margin",
                          example_input=x[:1])
    ee.transform(None)
    with ee.calibrating():
        ee(x)
    ee.policy = spread_policy(ee, x, "margin")
    model = dmxgen.save(ee, d / "lenet_ee.pt2", x[:1])
    np.save(d / "x.npy", np.asarray(ee.quantize_input(x)).astype(np.int8))
    export(model, d / "out", input_files=(d / "x.npy",), n_vectors=0)
    return d / "out", ee.policy.thresholds


def stored_counts(out: Path) -> list[int]:
    with np.load(out / "test_vectors/expected_ee.npz") as z:
        return np.bincount(z["exit"], minlength=3).tolist()


def copy_export(out: Path, copy: Path) -> Path:
    for p in out.rglob("*"):
        if p.is_file():
            (copy / p.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (copy / p.relative_to(out)).write_bytes(p.read_bytes())
    return copy


def test_fractions_are_the_stored_exits(ee_export):
    out, thresholds = ee_export
    counts = stored_counts(out)
    assert sum(counts) == N_VECTORS and min(counts) > 0  # every exit taken: the shares are not trivial
    ee = report_json(out)["early_exit"]
    assert ee["policy"] == "margin" and ee["thresholds"] == list(thresholds) and ee["vectors"] == N_VECTORS
    assert [r["entry"] for r in ee["exits"]] == ["exit0", "exit1", "final"]
    assert [r["threshold"] for r in ee["exits"]] == [*thresholds, None]
    assert [r["vectors"] for r in ee["exits"]] == counts
    assert [r["fraction"] for r in ee["exits"]] == [c / N_VECTORS for c in counts]
    assert ee["bench"] is None and all(r["instructions"] is None for r in ee["exits"])


def test_page_has_the_exit_plot_and_summary_line(ee_export, tmp_path):
    out, thresholds = ee_export
    page_path = tmp_path / "ee.html"
    assert cli("report", str(out), "-o", str(page_path)).exit_code == 0
    page = page_path.read_text()
    start = page.index('<figure id="plot-exits" class="plot">')
    assert page[start:].index("<svg") < 100 and "Early exit taken" in page[start:page.index("</figure>", start)]
    shares = ", ".join(f"{name} {c / N_VECTORS:.1%}" for name, c in zip(("exit 0", "exit 1", "final"),
                                                                       stored_counts(out)))
    assert (f"<dt>early exit</dt><dd>margin policy, thresholds {thresholds[0]}, {thresholds[1]}; "
            f"{N_VECTORS} stored vectors leave at {shares}; instructions not measured") in page


def test_a_plain_model_has_no_early_exit(small_export):  # noqa: F811
    assert "early_exit" not in report_json(small_export)
    assert cli("report", str(small_export)).exit_code == 0
    page = (small_export / "report.html").read_text()
    assert "plot-exits" not in page and "early exit" not in page.lower()


def test_unreadable_expected_exits_is_one_line_and_exit_2(ee_export, tmp_path):
    copy = copy_export(ee_export[0], tmp_path / "out")
    (copy / "test_vectors/expected_ee.npz").write_bytes(b"not a zip")
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "report", str(copy)], capture_output=True, text=True)
    assert r.returncode == 2 and "expected_ee.npz: cannot read the early-exit test vectors" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (copy / "report.html").exists()


@pytest.mark.firmware
@needs_tools
def test_bench_figures_appear_once_bench_has_run(ee_export, tmp_path):
    out = copy_export(ee_export[0], tmp_path / "out")  # the module's folder keeps no bench results
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "bench", str(out), "--json", "--runs", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    measured = json.loads(r.stdout)["early_exit"]
    ee = report_json(out)["early_exit"]
    assert measured["exits"] == stored_counts(out) == ee["bench"]["exits"]  # the firmware took the stored exits
    for key in ("instructions_with_early_exit", "instructions_without_early_exit",
                "exit_branches_extra_flash_bytes"):
        assert ee["bench"][key] == measured[key] and measured[key] > 0, key
    assert measured["model_ee_ram_bytes"] >= measured["model_ram_bytes"] > 0  # the arena at least
    assert measured["exit_branches_extra_ram_bytes"] == measured["model_ee_ram_bytes"] - measured["model_ram_bytes"]
    per_exit = measured["instructions_per_exit"]
    assert len(per_exit) == len(measured["exits"])
    assert [v is not None for v in per_exit] == [n > 0 for n in measured["exits"]]
    taken = [k for k, n in enumerate(measured["exits"]) if n]
    assert all(per_exit[a] < per_exit[b] for a, b in zip(taken, taken[1:]))  # a deeper exit runs more
    # the per-exit means, weighted by the exits' counts, give back the average (within 2: each figure
    # is rounded from SysTick ticks, per vector or per average, and the means are integers)
    weighted = sum(per_exit[k] * measured["exits"][k] for k in taken) / sum(measured["exits"])
    assert abs(weighted - measured["instructions_with_early_exit"]) <= 2
    assert [row["instructions"] for row in ee["exits"]] == per_exit
    assert cli("report", str(out)).exit_code == 0
    page = (out / "report.html").read_text()
    assert (f"; {measured['instructions_with_early_exit']:,} Cortex-M55 instructions per inference on average "
            f"with early exit, {measured['instructions_without_early_exit']:,} without; the exit branches add "
            f"{measured['exit_branches_extra_flash_bytes']:,} flash bytes") in page
