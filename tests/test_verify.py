"""Reference vs TFLite's reference kernels, on models the tests build and on the shared ones."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen.cli import main
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import small_cnn
from tests.conftest import SHARED_MODELS, sampled, shared_models, shared_or_skip

SAMPLE_INPUTS = {
    "kws_ref_model.tflite": "mlperf_tiny/kws_sample_input_int8_1x49x10.npy",
}


def verify_json(*args):
    r = CliRunner().invoke(main, ["verify", *map(str, args), "--json"], catch_exceptions=False)
    return r.exit_code, json.loads(r.output)


def ad_windows(tmp_path, n=4):
    """The MLPerf AD sample (float32 log-mel) as n 640-value windows, in a .npy."""
    raw = np.fromfile(SHARED_MODELS / "mlperf_tiny" / "normal_id_01_00000000_hist_librosa.bin", dtype="<f4")
    p = tmp_path / "ad_windows.npy"
    np.save(p, raw[: 640 * n].reshape(n, 640))
    return p


def test_built_model_bit_exact(small_model):
    code, r = verify_json(small_model, "--inputs", "8")
    assert code == 0 and r["bit_exact"] and r["max_abs_diff"] == 0
    assert r["inputs"] == 8
    assert {layer["op"] for layer in r["layers"]} >= {"conv2d", "depthwise_conv2d", "fully_connected", "softmax"}


def test_mismatch_is_reported_and_exit_1(small_model, monkeypatch):
    # Break the reference's fully connected kernel by one LSB: verify must notice and say where.
    from dmxgen import reference

    original = reference.KERNELS["fully_connected"]

    def off_by_one(op, args, out):  # one logit only: softmax ignores a shift of all of them
        y = original(op, args, out).astype(int)
        y.reshape(-1)[0] = y.reshape(-1)[0] + 1 if y.reshape(-1)[0] < 127 else 126
        return y

    monkeypatch.setitem(reference.KERNELS, "fully_connected", off_by_one)
    code, r = verify_json(small_model, "--inputs", "2")
    assert code == 1 and not r["bit_exact"]
    bad = [layer["name"] for layer in r["layers"] if layer["mismatches"]]
    assert bad and bad[0].startswith("fully_connected")


@pytest.mark.shared
@pytest.mark.parametrize("model", sampled(shared_models()))
def test_shared_model_bit_exact(model, tmp_path):
    extra = []
    if model.name in SAMPLE_INPUTS:
        extra = ["--input", SHARED_MODELS / SAMPLE_INPUTS[model.name]]
    if model.name == "ad01_int8.tflite":
        extra = ["--input", ad_windows(tmp_path)]
    code, r = verify_json(model, "--inputs", "8", *extra)
    assert r["bit_exact"], r["outputs"]
    assert code == 0
    assert r["inputs"] == 8 + (1 if model.name in SAMPLE_INPUTS else 4 if extra else 0)


@pytest.mark.shared
def test_tflm_golden_and_semantics_on_ad01(tmp_path):
    """The one shared model where TFLite and TFLM disagree: each semantics matches its own golden."""
    model = shared_or_skip("mlperf_tiny/ad01_int8.tflite")
    code, r = verify_json(model, "--golden", "tflm", "--inputs", "8")
    assert code == 0 and r["bit_exact"] and r["golden"] == "tflm"
    # and the two semantics really differ there, so the option is not a no-op
    from dmxgen import reference
    from dmxgen.vectors import random_inputs

    g_tfl, g_tflm = load_tflite(model), load_tflite(model, semantics="tflm")
    differ = 0
    for inputs in random_inputs(g_tfl, 4, 0):
        a = reference.run(g_tfl, inputs)[g_tfl.outputs[0]]
        b = reference.run(g_tflm, inputs)[g_tflm.outputs[0]]
        differ += int(np.count_nonzero(a != b))
    assert differ > 0


@pytest.mark.shared
def test_verify_cli_subprocess_exit_code():
    model = shared_or_skip("mlperf_tiny/kws_ref_model.tflite")
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "verify", str(model), "--inputs", "2", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"model", "inputs", "bit_exact", "max_abs_diff", "layers"}


@pytest.mark.shared
def test_inspect_sparse_l_90_shows_pruned_layers():
    model = shared_or_skip("dcsr/sparse_l_90.tflite")
    r = CliRunner().invoke(main, ["inspect", str(model), "--json"], catch_exceptions=False)
    layers = json.loads(r.output)["layers"]
    pruned = [x for x in layers if x["op"] == "fully_connected"
              or (x["op"] == "conv2d" and x["weight_shape"][1:3] == [1, 1])]
    assert len(pruned) == 6
    for x in pruned:
        assert 0.88 <= x["sparsity"] <= 0.96, (x["name"], x["sparsity"])
    others = [x for x in layers if x["params"] and x not in pruned]
    assert all(x["sparsity"] < 0.1 for x in others)


def test_float_softmax_table_uses_libm_expf():
    from dmxgen.frontends.tflite_ops.activations import _softmax_float_table

    t = _softmax_float_table(1.0, 0.1)
    assert t.dtype == np.float32 and t[255] == 1.0
    assert np.allclose(t[255 - np.arange(256)], np.exp(-0.1 * np.arange(256)), rtol=1e-6)


def test_graph_from_builder_has_integer_attrs():
    m = small_cnn()
    g = load_tflite_bytes(m.build([0], [len(m.sg.tensors) - 1]))
    conv = g.ops[0]
    assert conv.attrs["multiplier"].dtype == np.int32 and conv.attrs["pad"] == (0, 0, 1, 1)


def load_tflite_bytes(data: bytes):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.tflite"
        p.write_bytes(data)
        return load_tflite(p)


@pytest.mark.shared
@pytest.mark.parametrize("name,dense,dcsr,ratio", [
    ("dcsr/sparse_l_90.tflite", 579600, 111139, "5.22x"),
    ("dcsr/mobilenetv2_cifar10_sparse90.tflite", 1927680, 398745, "4.83x"),
])
def test_inspect_formats_paper_figures(name, dense, dcsr, ratio):
    """formats.md's reference figures, through the CLI (text and JSON)."""
    model = shared_or_skip(name)
    r = CliRunner().invoke(main, ["inspect", str(model), "--formats"], catch_exceptions=False)
    assert f"dense {dense} B -> dCSR {dcsr} B ({ratio}" in r.output
    j = json.loads(CliRunner().invoke(main, ["inspect", str(model), "--formats", "--json"]).output)
    sel = j["formats"]["selected_totals"]
    assert (sel["dense"], sel["dcsr"]) == (dense, dcsr)
    rows = [x for x in j["formats"]["rows"] if x["selected"]]
    assert all({"dense", "csr", "dcsr", "rle", "chosen"} <= set(x) for x in rows)


def test_float_input_file_is_quantized_as_tflite_quantize(tmp_path):
    """`--input F.npy` of floats for an int8 input: the codes LiteRT's QUANTIZE gives, ties away from zero."""
    import re

    from dmxgen.vectors import read_input_file
    from dmxgen.goldens import run_golden
    from dmxgen.testing.tflite_builder import ModelBuilder

    floats = np.array([[-1.25, -0.25, 0.25, 1.25, -0.75, 0.75, -2.5, 100.0]], np.float32)
    q = ModelBuilder()
    x = q.tensor("x", [1, 8], "float32")
    y = q.tensor("y", [1, 8], scale=0.5, zero_point=0)
    q.op("QUANTIZE", [x], [y])
    want = run_golden(q.save(tmp_path / "quantize.tflite", [x], [y]), [floats])[0]
    assert want.reshape(-1)[:4].tolist() == [-3, -1, 1, 3]

    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.5, zero_point=0)
    shape = m.tensor("shape", [2], "int32", data=[2, 4])
    y = m.tensor("y", [2, 4], scale=0.5, zero_point=0)
    m.op("RESHAPE", [x, shape], [y], newShape=[2, 4])
    model = m.save(tmp_path / "int8_input.tflite", [x], [y])
    npy = tmp_path / "floats.npy"
    np.save(npy, floats)

    assert np.array_equal(read_input_file(load_tflite(model), str(npy))[0][0], want)  # what verify MODEL runs
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["export", str(model), "-o", str(out), "--input", str(npy), "--vectors", "2"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    stored = np.load(out / "test_vectors" / "inputs.npy")
    assert np.array_equal(stored[-1].reshape(want.shape), want)
    sample = re.search(r"dmx_sample_input\[DMX_INPUT_SIZE\] = \{([^}]*)\}", (out / "input.h").read_text())
    assert [int(v) for v in sample.group(1).replace("\n", " ").split(",") if v.strip()] == want.reshape(-1).tolist()
