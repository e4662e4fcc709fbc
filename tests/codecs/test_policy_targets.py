"""The storage policy as the commands use it: C and HLS choose alike, and an encoding that
`dmxgen compress` stored is what `dmxgen export --format auto` writes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")


def dmxgen(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> Path:
    """small_cnn with 90% of its weights zero: conv2d_0 is smallest as csr, fully_connected_4 as dcsr."""
    from dmxgen.testing.tflite_builder import small_cnn

    m = small_cnn(seed=1, sparsity=0.9)
    return m.save(tmp_path_factory.mktemp("policy") / "cnn.tflite", [0], [len(m.sg.tensors) - 1])


def formats(manifest: dict, reason_key: str) -> dict[str, tuple[str, str]]:
    return {la["name"]: (la["format"], la[reason_key]) for la in manifest["layers"] if la.get("format")}


@pytest.mark.parametrize("fmt, min_sparsity", [("dense", "0.5"), ("csr", "0.5"), ("dcsr", "0.895"), ("auto", "0.5")])
def test_c_and_hls_choose_alike(cnn, tmp_path, fmt, min_sparsity):
    out = tmp_path / "out"
    dmxgen("export", str(cnn), "-o", str(out), "--target", "c,hls", "--format", fmt, "--min-sparsity", min_sparsity)
    manifest = json.loads((out / "manifest.json").read_text())
    c, hls = formats(manifest, "format_reason"), formats(manifest["hls"], "reason")
    assert set(c) == {"conv2d_0", "depthwise_conv2d_1", "fully_connected_4"}
    assert c == hls
    if fmt == "dcsr":  # 89.4% zeros in the conv, 89.6% in the FC: the threshold splits them
        assert c["conv2d_0"] == ("dense", "89.4% zeros is below --min-sparsity 0.895")
        assert c["fully_connected_4"] == ("dcsr", "requested")


def test_export_keeps_what_compress_stored(cnn, tmp_path):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    dmxgen("export", str(cnn), "-o", str(plain), "--format", "auto")
    before = formats(json.loads((plain / "manifest.json").read_text()), "format_reason")
    assert before["conv2d_0"][0] == "csr"  # what auto decides without a stored encoding

    compressed = tmp_path / "cnn_dcsr.tflite"
    dmxgen("compress", str(cnn), "-o", str(compressed), "--format", "dcsr", "--select", "sparse",
           "--min-sparsity", "0.5")
    dmxgen("export", str(compressed), "-o", str(packed), "--format", "auto", "--target", "c,hls")
    manifest = json.loads((packed / "manifest.json").read_text())
    kept = ("dcsr", "kept: the model file stores these weights as dcsr (dmxgen compress)")
    for target, key in ((manifest, "format_reason"), (manifest["hls"], "reason")):
        after = formats(target, key)
        assert after["conv2d_0"] == kept and after["fully_connected_4"] == kept
        assert after["depthwise_conv2d_1"][0] == "dense"  # compress does not store depthwise weights

    # The kept arrays are the ones `--format dcsr` writes for the original model.
    dcsr = tmp_path / "dcsr"
    dmxgen("export", str(cnn), "-o", str(dcsr), "--format", "dcsr", "--min-sparsity", "0")
    for layer in ("conv2d_0", "fully_connected_4"):
        assert (packed / "headers" / f"{layer}.h").read_bytes() == (dcsr / "headers" / f"{layer}.h").read_bytes()

    # ...and an explicit --format is still obeyed.
    dense = tmp_path / "dense"
    dmxgen("export", str(compressed), "-o", str(dense), "--format", "dense")
    assert {f for f, _ in formats(json.loads((dense / "manifest.json").read_text()), "format_reason").values()} \
        == {"dense"}


def test_inspect_formats_reports_the_export_choice(cnn, tmp_path):
    compressed = tmp_path / "cnn_dcsr.tflite"
    dmxgen("compress", str(cnn), "-o", str(compressed), "--select", "sparse", "--min-sparsity", "0.5")
    for model in (cnn, compressed):
        out = tmp_path / f"out_{model.stem}"
        dmxgen("export", str(model), "-o", str(out), "--format", "auto")
        manifest = json.loads((out / "manifest.json").read_text())
        rows = json.loads(dmxgen("inspect", str(model), "--formats", "--json").stdout)["formats"]["rows"]
        exported = {la["name"]: (la["format"], la["weight_bytes"]) for la in manifest["layers"] if la.get("format")}
        assert {r["layer"]: (r["chosen"], r["chosen_bytes"]) for r in rows} == exported
