"""The golden interpreters: TFLM's arena is sized from the model, a model LiteRT refuses is one line."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dmxgen import goldens
from dmxgen.errors import DmxError
from dmxgen.testing.tflite_builder import ModelBuilder

DMXGEN = [sys.executable, "-m", "dmxgen.cli"]
SHAPE = [1, 32, 32, 8]  # 8 KB per activation: three of them outweigh 10 x the ~500-byte file


def run(*args):
    return subprocess.run(DMXGEN + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def two_input_add(tmp_path):
    m = ModelBuilder()
    a = m.tensor("a", SHAPE, scale=0.05, zero_point=-3)
    b = m.tensor("b", SHAPE, scale=0.07, zero_point=5)
    y = m.tensor("y", SHAPE, scale=0.1, zero_point=0)
    m.op("ADD", [a, b], [y])
    return m.save(tmp_path / "add2.tflite", [a, b], [y])


def bias_axis_model(tmp_path, layers: int = 6):
    """Depthwise convs whose 1-D per-channel biases say quantized_dimension 3 (copied from the
    weights, as in tflite-micro's person_detect.tflite): LiteRT refuses the file, TFLM ignores it."""
    rng = np.random.default_rng(0)
    m = ModelBuilder()
    x = first = m.tensor("x", [1, 6, 6, 4], scale=0.05, zero_point=-3)
    for i in range(layers):
        s = rng.uniform(0.002, 0.01, 4).astype(np.float32)
        w = m.tensor(f"dw{i}/w", [1, 3, 3, 4], scale=s, zero_point=np.zeros(4),
                     data=rng.integers(-127, 128, (1, 3, 3, 4)), axis=3)
        b = m.tensor(f"dw{i}/b", [4], "int32", scale=s * 0.05, zero_point=np.zeros(4),
                     data=rng.integers(-500, 500, 4), axis=3)
        y = m.tensor(f"dw{i}/out", [1, 6, 6, 4], scale=0.05, zero_point=-3)
        m.op("DEPTHWISE_CONV_2D", [x, w, b], [y], padding="SAME", strideH=1, strideW=1, depthMultiplier=1,
             fusedActivationFunction="RELU6", dilationHFactor=1, dilationWFactor=1)
        x = y
    return m.save(tmp_path / "bias_axis.tflite", [first], [x])


@pytest.fixture
def sizes(monkeypatch):
    """The arena size of every TFLM interpreter created."""
    from tflite_micro import runtime

    seen = []
    real = runtime.Interpreter.from_bytes
    monkeypatch.setattr(runtime.Interpreter, "from_bytes",
                        lambda data, arena_size: seen.append(arena_size) or real(data, arena_size=arena_size))
    return seen


def test_tflm_runs_a_two_input_add_bigger_than_its_default_arena(tmp_path):
    from tflite_micro import runtime

    path = two_input_add(tmp_path)
    with pytest.raises(RuntimeError, match="allocate"):  # TFLM's default arena: 10 x the file size
        runtime.Interpreter.from_file(str(path))
    assert goldens.tflm_arena_size(path.read_bytes()) >= 3 * int(np.prod(SHAPE))
    r = run("verify", path, "--golden", "tflm", "--inputs", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = json.loads(r.stdout)
    assert out["bit_exact"] and out["golden"] == "tflm" and out["inputs"] == 3
    assert out["outputs"][0]["values"] == 3 * int(np.prod(SHAPE))


def test_tflm_arena_doubles_after_an_allocation_failure(tmp_path, monkeypatch, sizes, capfd):
    path = two_input_add(tmp_path)
    rng = np.random.default_rng(1)
    x = [rng.integers(-128, 128, SHAPE).astype(np.int8) for _ in range(2)]
    want = goldens.run_golden(path, x, "tflite")[0]
    monkeypatch.setattr(goldens, "tflm_arena_size", lambda data: 4096)  # far smaller TFLM may crash
    np.testing.assert_array_equal(goldens.run_golden(path, x, "tflm")[0], want)
    assert sizes == [4096, 8192, 16384, 32768]  # 24 KB of activations fit the fourth
    assert capfd.readouterr().err == ""  # TFLM's "Failed to resize buffer" of the first tries is caught


def test_tflm_allocation_failure_at_the_cap_is_one_line_with_tflms_reason(tmp_path, monkeypatch, capfd):
    path = two_input_add(tmp_path)
    monkeypatch.setattr(goldens, "tflm_arena_size", lambda data: 4096)
    monkeypatch.setattr(goldens, "TFLM_ARENA_CAP", 8192)
    with pytest.raises(DmxError) as e:
        goldens.run_golden(path, [np.zeros(SHAPE, np.int8)] * 2, "tflm")
    msg = str(e.value)
    assert "\n" not in msg and "TFLite Micro cannot load this model in an arena of 8,192 bytes" in msg
    assert "Failed to resize buffer. Requested: 24576" in msg
    assert capfd.readouterr().err == ""


def test_tflm_refusal_for_another_reason_gives_tflms_words_without_retrying(tmp_path, sizes, capfd):
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    y = m.tensor("y", [1, 8], scale=0.1, zero_point=0)
    m.op("CUSTOM", [x], [y], custom_code="MyOp")
    path = m.save(tmp_path / "custom.tflite", [x], [y])
    with pytest.raises(DmxError) as e:
        goldens.run_golden(path, [np.zeros((1, 8), np.int8)], "tflm")
    assert str(e.value).endswith("TFLite Micro cannot load this model: Failed to get registration from op code CUSTOM")
    assert len(sizes) == 1 and capfd.readouterr().err == ""


def test_litert_refusal_is_one_short_line_suggesting_tflm(tmp_path):
    path = bias_axis_model(tmp_path)
    with pytest.raises(ValueError) as raw:  # what LiteRT itself says: one message per tensor, glued
        goldens._tflite_interpreter(path, False)
    assert len(str(raw.value)) > 400
    r = run("verify", path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    line = lines[0]
    assert "bias_axis.tflite: LiteRT cannot load this model" in line
    assert "quantized_dimension must be in range [0, 1). Was 3" in line
    assert "--golden tflm" in line and len(line) - len(str(path)) < 200, line
    r = run("verify", path, "--golden", "tflm", "--inputs", "4")
    assert r.returncode == 0 and "BIT-EXACT" in r.stdout, r.stdout + r.stderr


def test_short_reason_keeps_single_messages_whole():
    assert goldens.short_reason(ValueError("Didn't find op for builtin opcode 'TANH' version '1'")) == \
        "Didn't find op for builtin opcode 'TANH' version '1'"
    assert goldens.short_reason(RuntimeError("")) == "RuntimeError"
    two_lines = RuntimeError("tensorflow/lite/kernels/conv.cc:355 input->dims->size != 4 (3 != 4)\n"
                             "Node number 0 (CONV_2D) failed to prepare.\n")
    assert goldens.short_reason(two_lines) == \
        "tensorflow/lite/kernels/conv.cc:355 input->dims->size != 4 (3 != 4); Node number 0 (CONV_2D) failed to prepare"
