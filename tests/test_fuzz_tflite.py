"""A short seeded run of tools/fuzz_tflite.py: mutated shared models through every command,
with no defect (issue 18). The long run is `nice python tools/fuzz_tflite.py --out DIR`."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_or_skip


def fuzz_tool():
    spec = importlib.util.spec_from_file_location("fuzz_tflite", ROOT / "tools" / "fuzz_tflite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.shared
@pytest.mark.slow  # 40 s: a seeded fuzz run; `make test-slow`
def test_seeded_fuzz_run_finds_no_defect(tmp_path):
    tool = fuzz_tool()
    models = [shared_or_skip("mlperf_tiny/kws_ref_model.tflite"), shared_or_skip("dcsr/sparse_s_90.tflite")]
    found = tool.fuzz(models, tmp_path / "defects", count=300, seconds=90, seed=18, commands=list(tool.COMMANDS),
                      run_timeout=60, quiet=True)
    print(tool.summary(found, list(tool.COMMANDS)))
    assert found["defects"] == []
    assert found["cases"] >= 100, found["cases"]  # not cut short to a handful (a busy machine gets fewer)
    runs = found["runs"]
    assert sum(runs[(c, "refusal")] for c in tool.COMMANDS) > 0 and runs[("verify", "success")] > 0
    assert list((tmp_path / "defects").iterdir()) == []  # nothing saved, no case left in progress


def test_mutations_change_the_file_and_are_reproducible():
    """The same seed gives the same files; every mutation class yields bytes unlike the seed."""
    tool = fuzz_tool()
    seed_bytes = Path(shared_or_skip("mlperf_tiny/kws_ref_model.tflite")).read_bytes()
    first = [tool.mutate(random.Random(5), seed_bytes) for _ in range(3)]
    again = [tool.mutate(random.Random(5), seed_bytes) for _ in range(3)]
    assert first == again
    rng = random.Random(1)
    for name, fn in tool.RAW.items():
        assert fn(rng, seed_bytes) != seed_bytes, name


def test_a_defect_is_saved_with_its_command(tmp_path, monkeypatch):
    """A run that raises is a defect: the file and the command that reproduces it are kept."""
    tool = fuzz_tool()
    model = shared_or_skip("mlperf_tiny/kws_ref_model.tflite")
    import dmxgen.commands.inspect as inspect_cmd

    def boom(*a, **k):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(inspect_cmd, "load_model", boom)
    found = tool.fuzz([model], tmp_path / "d", count=1, seconds=30, seed=0, commands=["inspect"], run_timeout=30,
                      quiet=True)
    assert len(found["defects"]) == 1 and "ZeroDivisionError: planted" in found["defects"][0]
    text = (tmp_path / "d" / "defect_00000.txt").read_text()
    assert f"reproduce: dmxgen --debug inspect {tmp_path / 'd' / 'defect_00000.tflite'}" in text
    assert (tmp_path / "d" / "defect_00000.tflite").stat().st_size > 0
