"""The verification ladder is filled by the commands that climb it: `dmxgen verify OUT` records the
host build and the reference-vs-TFLite rungs, `make -C hls csim` the HLS one; a broken build is
recorded as a MISMATCH, not as bit-exact."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmxgen.backends.hls_csim import run_csim
from dmxgen.cli import main


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def ladder(out: Path) -> dict[str, str]:
    r = cli("report", str(out), "--json")
    assert r.exit_code == 0, r.output
    return {s["step"]: s["status"] for s in json.loads(r.output)["ladder"]}


@pytest.fixture
def export_c_hls(small_model, tmp_path) -> Path:
    out = tmp_path / "small"
    r = cli("export", str(small_model), "-o", str(out), "--target", "c,hls", "--vectors", "2")
    assert r.exit_code == 0, r.output
    return out


def test_verify_and_csim_fill_the_ladder(export_c_hls):
    out = export_c_hls
    assert ladder(out) == {"reference_vs_tflite": "not run", "host_c": "not run", "m55": "not run",
                           "hls_csim": "not run"}
    r = cli("verify", str(out), "--inputs", "3")
    assert r.exit_code == 0, r.output
    assert "reference vs tflite on the same inputs: bit-exact" in r.output
    p = run_csim(out)
    assert p.returncode == 0, p.stdout + p.stderr
    assert ladder(out) == {"reference_vs_tflite": "bit-exact", "host_c": "bit-exact", "m55": "not run",
                           "hls_csim": "bit-exact"}
    host = json.loads((out / "verify" / "host_c.json").read_text())
    assert host["detail"].startswith("3 inputs")


def _corrupt_first_bias(header: Path) -> None:
    """Add 1000 to the first number of the first int32 array: the build still compiles, the output moves."""
    text = header.read_text()
    m = re.search(r"int32_t[^=]*=\s*\{\s*(-?\d+)", text)
    assert m, f"no int32 array in {header.name}"
    a, b = m.span(1)
    header.write_text(text[:a] + str(int(m.group(1)) + 100000) + text[b:])


def test_a_broken_build_is_recorded_as_a_mismatch(export_c_hls):
    out = export_c_hls
    headers = sorted(p for p in (out / "headers").glob("*.h") if "int32_t" in p.read_text())
    _corrupt_first_bias(headers[0])
    r = cli("verify", str(out), "--inputs", "3")
    assert r.exit_code == 1, r.output
    steps = ladder(out)
    assert steps["host_c"] == "MISMATCH"
    assert steps["reference_vs_tflite"] == "bit-exact"  # the reference itself is still right


def test_a_failing_csim_is_recorded_as_a_mismatch(export_c_hls):
    out = export_c_hls
    data = sorted((out / "hls" / "tb_data").glob("*"))
    expected = [p for p in data if "out" in p.name or "expected" in p.name]
    assert expected, [p.name for p in data]
    target = expected[0]
    text = target.read_text()
    first = re.search(r"-?\d+", text)
    target.write_text(text[:first.start()] + str(int(first.group()) ^ 1) + text[first.end():])
    p = run_csim(out)
    assert p.returncode != 0
    assert ladder(out)["hls_csim"] == "MISMATCH"
