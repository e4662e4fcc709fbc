"""`make -C hls csim` on the real models of ../shared/models: PASS to the bit, and FAIL when the data lies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends.hls import write_hls
from dmxgen.backends.hls_csim import run_csim
from dmxgen.vectors import random_inputs
from dmxgen.frontends.tflite import load_tflite
from tests.conftest import SHARED_MODELS, shared_or_skip

pytestmark = pytest.mark.shared

MODELS = {
    "ad01": "mlperf_tiny/ad01_int8.tflite",
    "kws": "mlperf_tiny/kws_ref_model.tflite",
    "sparse_s_90": "dcsr/sparse_s_90.tflite",
}


def sample_vectors(key: str, graph) -> list[list[np.ndarray]]:
    """The benchmark's own sample input where one exists, then random inputs over the input range."""
    vectors = random_inputs(graph, 3, seed=7)
    if key == "kws":
        vectors.insert(0, [np.load(SHARED_MODELS / "mlperf_tiny" / "kws_sample_input_int8_1x49x10.npy")
                           .astype(np.int8).reshape(1, 49, 10, 1)])
    if key == "ad01":  # one 640-value window of the AD sample, quantized with the input's scale
        raw = np.fromfile(SHARED_MODELS / "mlperf_tiny" / "normal_id_01_00000000_hist_librosa.bin", dtype="<f4")
        q = graph.tensors[graph.inputs[0]].quant
        vectors.insert(0, [np.clip(np.round(raw[:640] / q.s) + q.zp, -128, 127).astype(np.int8).reshape(1, 640)])
    return vectors


def export(key: str, out: Path, weight_format: str, interface: str) -> tuple[dict, list]:
    graph = load_tflite(shared_or_skip(MODELS[key]))
    ins = sample_vectors(key, graph)
    expected = [reference.run(graph, v) for v in ins]
    manifest = write_hls(graph, out, weight_format=weight_format, interface=interface, sample_inputs=ins,
                         expected_outputs=expected)
    return manifest, expected


def csim(out: Path):
    return run_csim(out, opt="-O1")


def assert_pass(out: Path, expected: list) -> None:
    r = csim(out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    values = len(expected) * sum(a.size for a in expected[0].values())
    assert f"PASS: {len(expected)} vectors, {values} output values bit-exact" in r.stdout


# ad01 dense/array and sparse_s_90 dcsr/stream pass first in the corruption tests below.
CONFIGS = [
    ("ad01", "csr", "stream"),
    ("kws", "dense", "stream"),
    ("kws", "auto", "array"),
    ("sparse_s_90", "dense", "stream"),
    ("sparse_s_90", "csr", "array"),
    ("sparse_s_90", "dcsr", "array"),
]


@pytest.mark.parametrize("key,weight_format,interface", CONFIGS)
def test_csim_passes_bit_exact(tmp_path, key, weight_format, interface):
    manifest, expected = export(key, tmp_path, weight_format, interface)
    assert_pass(tmp_path, expected)
    weighted = [la for la in manifest["layers"] if la["format"]]
    assert weighted and manifest["weight_bytes"] == sum(la["bytes"] for la in weighted)
    if weight_format in ("csr", "dcsr"):
        assert {la["format"] for la in weighted if la["op"] != "depthwise_conv2d"} == {weight_format}


def test_sparse_s_90_dcsr_is_smaller_than_dense(tmp_path):
    """The pruned FC and 1x1 layers stored as dCSR take a fraction of their dense bytes (formats.md)."""
    manifest, _ = export("sparse_s_90", tmp_path, "dcsr", "array")
    pruned = [la for la in manifest["layers"] if la["op"] == "fully_connected" or la["name"] in
              ("conv2d_5", "conv2d_7", "conv2d_9", "conv2d_11")]
    assert len(pruned) == 5
    assert sum(la["bytes"] for la in pruned) * 3 < sum(la["dense_bytes"] for la in pruned)


def _corrupt(path: Path, index: int, change) -> tuple[str, str]:
    """Replace value `index` of the first line by change(old); returns (old, new) tokens."""
    lines = path.read_text().splitlines()
    tokens = lines[0].split()
    old = tokens[index]
    tokens[index] = change(old)
    lines[0] = " ".join(tokens)
    path.write_text("\n".join(lines) + "\n")
    return old, tokens[index]


def test_corrupted_int8_expected_fails(tmp_path):
    _, expected = export("ad01", tmp_path, "dense", "array")
    assert_pass(tmp_path, expected)
    old, new = _corrupt(tmp_path / "hls" / "tb_data" / "expected.dat", 5,
                        lambda t: str(int(t) + 1 if int(t) < 127 else int(t) - 1))
    r = csim(tmp_path)
    assert r.returncode != 0
    assert f"MISMATCH vector 0 output 'Identity' [5]: got {old}, expected {new}" in r.stdout
    assert "FAIL: 1 of " in r.stdout and "PASS" not in r.stdout


def test_corrupted_float_expected_fails(tmp_path):
    """sparse_s_90's output is the host DEQUANTIZE of the top's int8: a changed float is caught too."""
    _, expected = export("sparse_s_90", tmp_path, "dcsr", "stream")
    assert_pass(tmp_path, expected)
    old, _ = _corrupt(tmp_path / "hls" / "tb_data" / "expected.dat", 3, lambda t: "1234.5")
    r = csim(tmp_path)
    assert r.returncode != 0
    assert f"MISMATCH vector 0 output 'Identity' [3]: got {float(old):.9g}" in r.stdout
    assert "expected 1234.5" in r.stdout and "FAIL: 1 of 36" in r.stdout


def test_missing_vector_and_bad_value_fail(tmp_path):
    export("kws", tmp_path, "dense", "array")
    expected = tmp_path / "hls" / "tb_data" / "expected.dat"
    lines = expected.read_text().splitlines()
    expected.write_text("\n".join(lines[:-1]) + "\n")
    r = csim(tmp_path)
    assert r.returncode != 0 and "tb: 4 input vectors but 3 expected vectors" in r.stdout
    expected.write_text("\n".join(lines[:-1] + [lines[-1].replace(lines[-1].split()[0], "x7", 1)]) + "\n")
    r = csim(tmp_path)
    assert r.returncode != 0 and "tb: 'x7' is not an int8 value" in r.stdout
