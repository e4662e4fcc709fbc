"""Hostile model files and fields (issue 18): read as LiteRT reads them, or refused in one line.

Every file is built inside the test (tflite_builder, os.mkfifo, truncate); none is committed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen.cli import main
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder
from tests.test_cli_errors import assert_one_line_error, run  # run: a child process with a timeout


# -- item 3: builtin_code vs deprecated_builtin_code ----------------------------------------------

def pool_model(opname: str, deprecated_code: str) -> bytes:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8, 8, 4], scale=0.05, zero_point=-3)
    y = m.tensor("y", [1, 4, 4, 4], scale=0.05, zero_point=-3)
    m.op(opname, [x], [y], deprecated_code=deprecated_code, padding="VALID", strideH=2, strideW=2,
         filterHeight=2, filterWidth=2)
    return m.build([x], [y])


@pytest.mark.parametrize("opname,deprecated", [("MAX_POOL_2D", "AVERAGE_POOL_2D"),
                                               ("AVERAGE_POOL_2D", "MAX_POOL_2D")])
def test_disagreeing_opcode_fields_are_read_as_litert_runs_them(tmp_path, opname, deprecated):
    """TFLite's GetBuiltinCode takes the larger field: MAX_POOL_2D (17) over AVERAGE_POOL_2D (1),
    whichever of the two fields holds it; the reference must then match LiteRT to the bit."""
    p = tmp_path / "pool.tflite"
    p.write_bytes(pool_model(opname, deprecated))
    assert [op.kind for op in load_tflite(p).ops] == ["max_pool2d"]
    r = CliRunner().invoke(main, ["verify", str(p), "--inputs", "4", "--json"], catch_exceptions=False)
    result = json.loads(r.output)
    assert r.exit_code == 0 and result["bit_exact"] and result["max_abs_diff"] == 0, r.output


# -- item 7: what the model path points at -------------------------------------------------------

def test_symlink_to_dev_zero_is_refused_without_reading_it(tmp_path):
    p = tmp_path / "zero.tflite"
    p.symlink_to("/dev/zero")
    assert_one_line_error(run("inspect", p), "zero.tflite", "not a regular file")


def test_fifo_is_refused_without_blocking(tmp_path):
    p = tmp_path / "pipe.tflite"
    os.mkfifo(p)
    assert_one_line_error(run("inspect", p), "pipe.tflite", "not a regular file")
    assert_one_line_error(run("verify", p), "pipe.tflite", "not a regular file")


def test_folder_as_model_is_one_line(tmp_path):
    d = tmp_path / "model.tflite"
    d.mkdir()
    for command in ("inspect", "export"):
        args = [command, d] + (["-o", tmp_path / "out"] if command == "export" else [])
        assert_one_line_error(run(*args), "model.tflite")
    assert not (tmp_path / "out").exists()


def test_empty_file_is_not_a_flatbuffer(tmp_path):
    p = tmp_path / "empty.tflite"
    p.write_bytes(b"")
    assert_one_line_error(run("inspect", p), "empty.tflite", "not a TFLite flatbuffer")


def test_sparse_3gib_file_is_refused_by_its_size(tmp_path):
    """A flatbuffer cannot exceed 2 GiB; the file is sparse, so no disk (nor RAM) is used."""
    p = tmp_path / "huge.tflite"
    with p.open("wb") as f:
        f.write(b"\0\0\0\0TFL3")
        f.truncate(3 << 30)
    assert_one_line_error(run("inspect", p), "huge.tflite", "2 GiB")


def test_header_is_checked_before_the_whole_file_is_read(tmp_path, monkeypatch):
    """A large file that is not a flatbuffer is refused after reading its 8-byte header only."""
    p = tmp_path / "big.tflite"
    with p.open("wb") as f:
        f.truncate(1 << 30)
    reads = []
    real_open = Path.open

    class CountingFile:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: CountingFile(real_open(self, *a, **k)))
    r = CliRunner().invoke(main, ["inspect", str(p)])
    assert r.exit_code == 2 and "not a TFLite flatbuffer" in r.output, r.output
    assert reads and all(0 <= n <= 8 for n in reads), reads


# -- items 1 (second bullet) and 9: scales and betas refused at load, with no numpy warning -------

def fc_softmax_model(input_scale: float = 0.1, beta: float = 1.0) -> bytes:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=input_scale, zero_point=0)
    w = m.tensor("w", [4, 8], scale=0.01, zero_point=0, data=np.ones((4, 8)))
    h = m.tensor("h", [1, 4], scale=0.2, zero_point=0)
    y = m.tensor("y", [1, 4], scale=1 / 256, zero_point=-128)
    m.op("FULLY_CONNECTED", [x, w, -1], [h])
    m.op("SOFTMAX", [h], [y], beta=beta)
    return m.build([x], [y])


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan"), float("inf")])
@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_bad_scale_is_refused_naming_the_tensor(tmp_path, scale, command):
    p = tmp_path / "scale.tflite"
    p.write_bytes(fc_softmax_model(input_scale=scale))
    assert_one_line_error(run(command, p), "scale.tflite", "tensor 'x'", "finite and positive")


@pytest.mark.parametrize("beta", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_softmax_beta_is_refused_naming_the_op(tmp_path, beta):
    p = tmp_path / "beta.tflite"
    p.write_bytes(fc_softmax_model(beta=beta))
    assert_one_line_error(run("verify", p), "beta.tflite", "SOFTMAX", "beta", "not a finite number")
