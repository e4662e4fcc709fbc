"""`dmxgen compress`: encoded weights inside a .tflite, read back by the frontend."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen.cli import main
from dmxgen.codecs import view
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from tests.conftest import shared_or_skip


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("fmt", ["dcsr", "csr", "rle"])
@pytest.mark.parametrize("strip", [False, True])
def test_round_trip_keeps_every_weight(small_model, tmp_path, fmt, strip):
    out = tmp_path / f"packed_{fmt}.tflite"
    r = invoke("compress", small_model, "-o", out, "--format", fmt, "--select", "sparse", "--min-sparsity", "0.3",
               *(["--strip-dense"] if strip else []))
    assert r.exit_code == 0, r.output
    original, packed = load_tflite(small_model), load_tflite(out)
    stored = [t for t in packed.tensors.values() if t.encoded is not None]
    assert {t.name for t in stored} == {"conv/w", "fc/w"}  # depthwise has no sparse kernel, so it is never chosen
    for t in stored:
        assert t.encoded.format == fmt
        assert np.array_equal(t.data, original.tensors[t.name].data)
        kind = "conv2d" if t.name.startswith("conv") else "fully_connected"
        assert np.array_equal(t.encoded.decode(), view.as_matrix(kind, original.tensors[t.name].data))
    if strip:
        dense = sum(t.data.nbytes for t in stored)
        assert out.stat().st_size <= small_model.stat().st_size - dense + sum(t.encoded.nbytes for t in stored) + 1024
    else:  # ordinary interpreters still run the file, with the same answers
        x = [np.arange(-128, 304, dtype=np.int64).astype(np.int8)[:432].reshape(1, 12, 12, 3)]
        assert np.array_equal(run_golden(out, x)[0], run_golden(small_model, x)[0])


def test_stripped_file_is_refused_by_verify_with_a_reason(small_model, tmp_path):
    out = tmp_path / "stripped.tflite"
    assert invoke("compress", small_model, "-o", out, "--select", "sparse", "--min-sparsity", "0.3",
                  "--strip-dense").exit_code == 0
    r = invoke("verify", out, "--inputs", "1")
    assert r.exit_code == 2
    assert "stripped" in r.output


def test_corrupt_weight_buffer_is_a_clear_error(small_model, tmp_path):
    out = tmp_path / "packed.tflite"
    assert invoke("compress", small_model, "-o", out, "--select", "sparse", "--min-sparsity", "0.3").exit_code == 0
    data = bytearray(out.read_bytes())
    at = data.find(b"DMXW1")  # the first tensor's container
    assert at > 0
    head = at + 6 + 4 + int.from_bytes(data[at + 6:at + 10], "little")
    data[head: head + 16] = b"\xff" * 16  # its first values and deltas
    out.write_bytes(bytes(data))
    r = invoke("inspect", out)
    assert r.exit_code == 2 and "dmxgen" in r.output and "weight buffer" in r.output


def test_refuses_to_overwrite_input(small_model):
    r = invoke("compress", small_model, "-o", small_model)
    assert r.exit_code == 2 and "refusing to overwrite" in r.output


@pytest.mark.shared
def test_sparse_l_90_paper_selection(tmp_path):
    model = shared_or_skip("dcsr/sparse_l_90.tflite")
    out = tmp_path / "l90.tflite"
    r = invoke("compress", model, "-o", out, "--strip-dense")
    assert r.exit_code == 0, r.output
    assert "579,600 B dense -> 111,139 B dcsr (5.22x)" in r.output
    j = json.loads(invoke("inspect", out, "--json").output)
    assert sum(1 for x in j["layers"] if x.get("stored") == "dcsr") == 6
    assert out.stat().st_size < model.stat().st_size / 2
