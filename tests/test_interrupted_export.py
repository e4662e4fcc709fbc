"""A `--target c,hls` export interrupted at random moments (issue 18, item 5).

SIGINT and SIGKILL, sent at random times over the whole run of an export that replaces a
previous one, must leave OUT exactly as the previous export left it or exactly as the new one
writes it, never a mix; the next export must then leave no hidden `.OUT.*` folders behind.
"""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmxgen.testing.tflite_builder import small_cnn

TRIES = 24
DMXGEN = [sys.executable, "-m", "dmxgen.cli"]


def export(model: Path, out: Path, seed: int) -> list[str]:
    return DMXGEN + ["export", str(model), "-o", str(out), "--target", "c,hls", "--seed", str(seed), "--vectors", "3"]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def wait_for_build(p: subprocess.Popen, out: Path) -> float:
    """Wait until the export has created its temporary folder (or ended); the time then."""
    while p.poll() is None and not any(name.startswith(f".{out.name}.tmp-") for name in hidden(out)):
        time.sleep(0.002)
    return time.monotonic()


@pytest.mark.slow  # about a minute: two dozen exports, each a fresh Python
def test_interrupted_export_leaves_the_previous_or_the_new_export(tmp_path):
    m = small_cnn(seed=3)
    model = m.save(tmp_path / "small.tflite", [0], [len(m.sg.tensors) - 1])
    out = tmp_path / "out"
    snapshots, building = {}, []
    for seed in (2, 1):  # the new export, then the previous one, which stays in OUT
        p = subprocess.Popen(export(model, out, seed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        building.append(wait_for_build(p, out))
        assert p.wait(timeout=300) == 0
        building[-1] = time.monotonic() - building[-1]
        snapshots[seed] = tree(out)
    assert snapshots[1] != snapshots[2] and "manifest.json" in snapshots[1]
    assert any(name.startswith("hls/") for name in snapshots[1])

    rng = random.Random(18)
    seen = {"previous": 0, "new": 0}
    for i in range(TRIES):
        sig = (signal.SIGINT, signal.SIGKILL)[i % 2]
        p = subprocess.Popen(export(model, out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_build(p, out)
        time.sleep(rng.uniform(0.0, 1.3) * max(building))  # from the start of the build past its commit
        p.send_signal(sig)
        p.wait(timeout=300)
        now = tree(out)
        assert now in (snapshots[1], snapshots[2]), (
            f"try {i} ({sig.name}): OUT is neither export: "
            f"{sorted(set(now) ^ set(snapshots[1]))[:5]} differ from the previous one")
        state = "previous" if now == snapshots[1] else "new"
        seen[state] += 1
        # the next export cleans whatever the interrupted one left, and completes
        subprocess.run(export(model, out, 1), check=True, capture_output=True, timeout=300)
        assert tree(out) == snapshots[1]
        assert hidden(out) == [], f"try {i} ({sig.name}): stale folders {hidden(out)}"
    assert seen["previous"] and seen["new"], seen  # the random moments covered both outcomes


def test_replacing_an_export_swaps_it_in_one_step(tmp_path, monkeypatch):
    """The previous OUT is never renamed away before the new one is in place (that left a moment
    when a SIGKILL lost both): the two folders are exchanged in one rename."""
    from click.testing import CliRunner

    from dmxgen.cli import main

    m = small_cnn(seed=3)
    model = m.save(tmp_path / "small.tflite", [0], [len(m.sg.tensors) - 1])
    out = tmp_path / "out"
    args = ["export", str(model), "-o", str(out), "--target", "c,hls", "--vectors", "1"]
    assert CliRunner().invoke(main, args + ["--seed", "1"]).exit_code == 0
    renamed = []
    real = Path.rename
    monkeypatch.setattr(Path, "rename", lambda self, target: renamed.append(self) or real(self, target))
    r = CliRunner().invoke(main, args + ["--seed", "2"])
    assert r.exit_code == 0, r.output
    assert out not in renamed and hidden(out) == []
    assert '"seed": 2,' in (out / "manifest.json").read_text()  # the new export is the one in place
