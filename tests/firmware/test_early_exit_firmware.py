"""An early-exit export on the emulated Cortex-M55: `make -C firmware sim` runs dmx_model_run and
dmx_model_run_ee on every stored test vector (all 360 digits test images) and takes the exit, and
gives the bytes, the integer reference gives; the early-exit run costs fewer instructions."""
from __future__ import annotations

import re

import numpy as np
import pytest
from _fw_harness import firmware_marks, make

torch = pytest.importorskip("torch")

from dmxgen.graph.early_exit import stored_policy  # noqa: E402
from dmxgen.pipeline import load_model  # noqa: E402
from dmxgen.reference.early_exit import run_early_exit  # noqa: E402
from dmxgen.targets import export  # noqa: E402
from tests.backends.test_early_exit_export import saved_digits_ee  # noqa: E402

pytestmark = firmware_marks

_EE = re.compile(r"^EE (\d+) exit=(-?\d+) expected=(\d+) run=(\d+) ee=(\d+)(.*)$", re.M)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("fw_ee")
    _, _, codes, images, files = saved_digits_ee(d, kinds=("margin",))
    model = files["margin"]
    export(model, d / "out", input_files=(images,), n_vectors=0)
    return d / "out", model, codes


def test_both_entry_points_on_every_vector(folder):
    out, model, codes = folder
    r = make("sim", f"MODEL={out}", timeout=900)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("PASS"), r.stdout[-2000:] + r.stderr
    rows = _EE.findall(r.stdout)
    assert len(rows) == len(codes) == 360
    graph = load_model(model)
    policy = stored_policy(graph)
    taken = [int(row[1]) for row in rows]
    assert taken == [run_early_exit(graph, policy, c)[0] for c in codes]
    assert all(row[5] == "" for row in rows)  # neither entry point differs from the reference's bytes
    run = np.array([int(row[3]) for row in rows])
    cost = {k: np.array([int(row[4]) for row in rows if int(row[1]) == k]) for k in set(taken)}
    assert set(cost) == {0, 1, 2}
    assert cost[0].max() < cost[1].min() and cost[1].max() < cost[2].min()  # deeper exits cost more
    assert cost[2].min() > run.max()  # the final exit also pays for the heads it tried
    average = re.search(r"^EE_AVERAGE vectors=360 run=(\d+) ee=(\d+) exits=(\S+)$", r.stdout, re.M)
    assert average and int(average.group(2)) < int(average.group(1))
    assert [int(v) for v in average.group(3).split(",")] == [taken.count(k) for k in range(3)]


def test_a_wrong_stored_exit_fails_the_run(folder, tmp_path):
    out, _, _ = folder
    copy = tmp_path / "out"
    copy.mkdir()
    for p in out.rglob("*"):
        if p.is_file() and "build-" not in str(p.relative_to(out)):
            (copy / p.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
            (copy / p.relative_to(out)).write_bytes(p.read_bytes())
    header = copy / "vectors_ee.h"
    text = header.read_text()
    start = text.index("dmx_ee_vector_exits")
    body = text.index("{", start) + 1
    first = re.match(r"\s*(\d+)", text[body:])
    wrong = str((int(first.group(1)) + 1) % 3)
    header.write_text(text[:body] + text[body:].replace(first.group(1), wrong, 1))
    r = make("sim", f"MODEL={copy}", timeout=900)
    assert r.returncode != 0 and "firmware: exit status 1" in r.stderr, r.stderr  # main.c returned 1: FAIL
    assert "FAIL 1 of 360 test vectors differ" in r.stdout, r.stdout[-1500:]
    assert re.search(r"^EE 0 exit=\d+ expected=" + wrong + r" .* ee_differs$", r.stdout, re.M)


def test_bench_reports_instructions_with_and_without_early_exit(folder):
    import json
    import subprocess
    import sys

    out, _, _ = folder
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "bench", str(out), "--json"], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    ee = json.loads(r.stdout)["early_exit"]
    assert ee["vectors"] == sum(ee["exits"]) == 360
    assert ee["instructions_with_early_exit"] < ee["instructions_without_early_exit"]
    manifest = json.loads((out / "manifest.json").read_text())["early_exit"]
    heads = manifest["head_weight_bytes"] + manifest["head_param_bytes"]
    # the heads' constants plus their code and the policy test: more than the constants, far less than a model
    assert heads < ee["exit_branches_extra_flash_bytes"] < ee["model_flash_bytes"] // 4
