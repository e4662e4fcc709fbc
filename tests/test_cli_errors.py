"""Bad input: one clear line, exit code 2, no traceback unless --debug."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

DMXGEN = [sys.executable, "-m", "dmxgen.cli"]


def run(*args, debug=False):
    cmd = DMXGEN + (["--debug"] if debug else []) + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def fc_model(out_shape=(1, 4), opname="FULLY_CONNECTED") -> bytes:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    w = m.tensor("w", [4, 8], scale=0.01, zero_point=0, data=np.ones((4, 8)))
    y = m.tensor("y", list(out_shape), scale=0.2, zero_point=0)
    if opname == "FULLY_CONNECTED":
        m.op(opname, [x, w, -1], [y])
    else:
        m.op(opname, [x], [y])
    return m.build([x], [y])


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_not_a_tflite_file(tmp_path, command):
    p = tmp_path / "notes.tflite"
    p.write_text("this is not a model\n")
    assert_one_line_error(run(command, p), "notes.tflite", "not a TFLite flatbuffer")


def test_missing_file(tmp_path):
    assert_one_line_error(run("inspect", tmp_path / "nope.tflite"), "no such file")


def test_truncated_file(tmp_path):
    data = fc_model()
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("inspect", p), "cut.tflite", "truncated")


def test_corrupted_flatbuffer(tmp_path):
    data = bytearray(fc_model())
    rng = np.random.default_rng(0)
    data[8:] = rng.integers(0, 256, len(data) - 8, dtype=np.uint8).tobytes()
    p = tmp_path / "garbage.tflite"
    p.write_bytes(bytes(data))
    assert_one_line_error(run("inspect", p), "garbage.tflite")


def test_unsupported_operator_names_op_and_tensor(tmp_path):
    p = tmp_path / "sin.tflite"
    p.write_bytes(fc_model(out_shape=(1, 8), opname="SIN"))
    assert_one_line_error(run("verify", p), "operator 0 (SIN) is not supported")


def test_unsupported_builtin_is_short_and_points_at_the_support_table(tmp_path):
    p = tmp_path / "sin.tflite"
    p.write_bytes(fc_model(out_shape=(1, 8), opname="SIN"))
    r = run("inspect", p)
    assert_one_line_error(r, "operator 0 (SIN) is not supported", "'Supported operators' in README.md")
    assert "CONV_2D" not in r.stderr and len(r.stderr.strip()) - len(str(p)) < 120, r.stderr


def custom_model(custom_code: str) -> bytes:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    h = m.tensor("h", [1, 8], scale=0.1, zero_point=0)
    y = m.tensor("y", [1, 8], scale=0.1, zero_point=0)
    m.op("RESHAPE", [x], [h], newShape=[1, 8])
    m.op("CUSTOM", [h], [y], custom_code=custom_code)
    return m.build([x], [y])


def test_custom_operator_is_named_with_an_npu_hint_for_ethos_u(tmp_path):
    p = tmp_path / "vela.tflite"
    p.write_bytes(custom_model("ethos-u"))
    r = run("verify", p)
    assert_one_line_error(r, "vela.tflite: operator 1: custom operator 'ethos-u' is not supported",
                          "compiled for an NPU", "before Vela")
    p = tmp_path / "mine.tflite"
    p.write_bytes(custom_model("MyOp"))
    r = run("inspect", p)
    assert_one_line_error(r, "operator 1: custom operator 'MyOp' is not supported", "README.md")
    assert "NPU" not in r.stderr and "CONV_2D" not in r.stderr


def test_inconsistent_shapes_name_the_layer(tmp_path):
    p = tmp_path / "shapes.tflite"
    p.write_bytes(fc_model(out_shape=(1, 5)))
    assert_one_line_error(run("inspect", p), "shapes.tflite", "fully_connected", "'y'", "output shape [1, 5]")


def test_debug_shows_traceback(tmp_path):
    p = tmp_path / "sin.tflite"
    p.write_bytes(fc_model(out_shape=(1, 8), opname="SIN"))
    r = run("inspect", p, debug=True)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "DmxError" in r.stderr


def test_bad_input_npy(tmp_path, small_model):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(7, np.int8))
    assert_one_line_error(run("verify", small_model, "--input", bad), "bad.npy", "whole number of inputs")


def test_help_explains_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("inspect", "verify"):
        assert cmd in r.stdout
    r = run("verify", "--help")
    assert "--golden" in r.stdout and "bit-exact" in r.stdout
