"""Models with several inputs or outputs: the C API takes one pointer per tensor, and
export, `dmxgen verify OUT` (host, sanitizers) and `dmxgen verify MODEL` agree to the bit."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends.host import have_compiler
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")
DMXGEN = [sys.executable, "-m", "dmxgen.cli"]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(DMXGEN + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def two_input_add(tmp_path: Path) -> Path:
    m = ModelBuilder()
    a = m.tensor("a", [1, 8], scale=0.1, zero_point=0)
    b = m.tensor("b/in", [1, 8], scale=0.2, zero_point=3)
    y = m.tensor("y", [1, 8], scale=0.3, zero_point=-1)
    m.op("ADD", [a, b], [y])
    return m.save(tmp_path / "add2.tflite", [a, b], [y])


def two_output_add(tmp_path: Path) -> Path:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    y1 = m.tensor("y1", [1, 8], scale=0.2, zero_point=0)
    m.op("ADD", [x, x], [y1])
    y2 = m.tensor("y2", [1, 8], scale=0.3, zero_point=0)
    m.op("ADD", [x, y1], [y2])
    return m.save(tmp_path / "out2.tflite", [x], [y1, y2])


def test_two_input_add_exports_with_one_pointer_per_tensor_and_verifies_on_the_host(tmp_path):
    model, out = two_input_add(tmp_path), tmp_path / "out"
    r = run_cli("export", model, "-o", out)
    assert r.returncode == 0, r.stderr
    header = (out / "model.h").read_text()
    assert ("int dmx_model_run(const dmx_input0_t *in_a, const dmx_input1_t *in_b_in, dmx_output0_t *out_y);"
            in header)
    assert "#define DMX_NUM_INPUTS 2" in header and "#define DMX_INPUT1_ZERO_POINT 3" in header
    m = json.loads((out / "manifest.json").read_text())
    assert [(x["name"], x["param"]) for x in m["inputs"]] == [("a", "in_a"), ("b/in", "in_b_in")]
    assert m["io_bytes"] == {"input": 16, "output": 8}  # both inputs count
    # the stored vectors are what the reference computes on the stored inputs
    g = load_tflite(model)
    with np.load(out / m["test_vectors"]["inputs"]) as ins, np.load(out / m["test_vectors"]["expected"]) as exp:
        assert sorted(ins.files) == ["a", "b/in"] and len(ins["a"]) == 8
        for k in range(8):
            want = reference.run(g, [ins["a"][k], ins["b/in"][k]])["y"]
            assert np.array_equal(exp["y"][k], want)
    r = run_cli("verify", out, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["bit_exact"] and result["expected_from"] == "model" and result["outputs"][0]["values"] == 64


def test_sample_input_header_holds_one_array_per_input(tmp_path):
    model, out = two_input_add(tmp_path), tmp_path / "out"
    assert run_cli("export", model, "-o", out, "--vectors", "1").returncode == 0
    text = (out / "input.h").read_text()
    ins = np.load(out / "test_vectors" / "inputs.npz")
    for k, name in enumerate(["a", "b/in"]):
        body = re.search(rf"dmx_sample_input{k}\[DMX_INPUT{k}_SIZE\] = {{(.*?)}};", text, re.S).group(1)
        assert [int(v) for v in body.replace(",", " ").split()] == ins[name][0].reshape(-1).tolist()
    assert "dmx_sample_inputs[DMX_NUM_INPUTS]" in text


def test_stored_vectors_verify_when_the_model_is_gone(tmp_path):
    model, out = two_input_add(tmp_path), tmp_path / "out"
    assert run_cli("export", model, "-o", out).returncode == 0
    model.unlink()
    r = run_cli("verify", out, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["expected_from"] == "stored"


def test_a_wrong_stored_output_is_caught(tmp_path):
    """The comparison can fail: a corrupted expected value of the second output shows as a mismatch."""
    model, out = two_output_add(tmp_path), tmp_path / "out"
    assert run_cli("export", model, "-o", out).returncode == 0
    model.unlink()
    path = out / "test_vectors" / "expected.npz"
    with np.load(path) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["y2"][0, 0, 0] ^= 1
    np.savez(path, **arrays)
    r = run_cli("verify", out, "--json")
    assert r.returncode == 1
    outputs = {o["name"]: o["mismatches"] for o in json.loads(r.stdout)["outputs"]}
    assert outputs == {"y1": 0, "y2": 1}


def test_two_output_model_verifies_on_the_host_and_against_litert(tmp_path):
    model, out = two_output_add(tmp_path), tmp_path / "out"
    assert run_cli("export", model, "-o", out).returncode == 0
    assert ("int dmx_model_run(const dmx_input0_t *in_x, dmx_output0_t *out_y1, dmx_output1_t *out_y2);"
            in (out / "model.h").read_text())
    r = run_cli("verify", out, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [(o["name"], o["mismatches"], o["values"]) for o in json.loads(r.stdout)["outputs"]] == [
        ("y1", 0, 64), ("y2", 0, 64)]
    r = run_cli("verify", model)
    assert r.returncode == 0 and "BIT-EXACT" in r.stdout, r.stdout + r.stderr


def test_verify_model_runs_a_two_input_tflite_against_litert(tmp_path):
    r = run_cli("verify", two_input_add(tmp_path), "--inputs", "4")
    assert r.returncode == 0 and "BIT-EXACT" in r.stdout, r.stdout + r.stderr


def test_input_npz_names_each_input_and_npy_is_refused_for_two_inputs(tmp_path):
    model, out = two_input_add(tmp_path), tmp_path / "out"
    a = np.arange(-8, 8, dtype=np.int8).reshape(2, 1, 8)
    b = np.full((2, 1, 8), 5, np.int8)
    np.savez(tmp_path / "in.npz", **{"a": a, "b/in": b})
    r = run_cli("export", model, "-o", out, "--vectors", "0", "--input", tmp_path / "in.npz")
    assert r.returncode == 0, r.stderr
    with np.load(out / "test_vectors" / "inputs.npz") as ins, np.load(out / "test_vectors" / "expected.npz") as e:
        assert np.array_equal(ins["a"], a) and np.array_equal(ins["b/in"], b)
        g = load_tflite(model)
        assert np.array_equal(e["y"][1], reference.run(g, [a[1], b[1]])["y"])
    assert run_cli("verify", out, "--inputs", "0", "--input", tmp_path / "in.npz").returncode == 0
    np.save(tmp_path / "in.npy", a)
    r = run_cli("export", model, "-o", tmp_path / "other", "--input", tmp_path / "in.npy")
    assert r.returncode == 2 and not (tmp_path / "other").exists()
    assert r.stderr == (f"dmxgen: error: {tmp_path / 'in.npy'}: a .npy holds one input; this model has 2 "
                        "('a', 'b/in'): give a .npz with one array per input name\n")
    np.savez(tmp_path / "bad.npz", a=a)
    r = run_cli("verify", model, "--input", tmp_path / "bad.npz")
    assert r.returncode == 2 and "'b/in' is missing" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("build", [two_input_add, two_output_add])
def test_firmware_harness_runs_several_inputs_and_outputs(tmp_path, build):
    from dmxgen import firmware

    if firmware.missing_tools():
        pytest.skip(f"firmware tools missing: {firmware.missing_tools()}")
    model, out = build(tmp_path), tmp_path / "out"
    assert run_cli("export", model, "-o", out, "--vectors", "1").returncode == 0
    result = firmware.run(out)
    assert result.passed, result.verdict
    with np.load(out / "test_vectors" / "expected.npz") as e:
        names = [x["name"] for x in json.loads((out / "manifest.json").read_text())["outputs"]]
        want = np.concatenate([e[n][0].reshape(-1) for n in names])
    assert result.outputs == want.tolist()  # every output, in graph order
    # a wrong expected value fails on the target
    text = (out / "expected.h").read_text()
    first = re.search(r"dmx_expected_output0\[DMX_OUTPUT0_SIZE\] = {\s*(-?\d+)", text)
    (out / "expected.h").write_text(text[:first.start(1)] + str((int(first.group(1)) + 1 + 128) % 256 - 128)
                                    + text[first.end(1):])
    assert not firmware.run(out).passed
