"""Every shared model exports in three weight formats and runs bit-exact on the host (sanitizers on)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dmxgen.targets import export
from dmxgen.targets import verify_folder
from dmxgen.frontends.tflite import load_tflite
from tests.backends.conftest import assert_bit_exact, needs_gcc

pytestmark = needs_gcc
from tests.conftest import sampled, shared_models, shared_or_skip

FORMATS = ("dense", "dcsr", "auto")


def c_sources_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.suffix in (".c", ".h"):
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.mark.shared
@pytest.mark.parametrize("model", sampled(shared_models()))
def test_exports_verify_bit_exact(model, tmp_path):
    """8 random inputs per format, sanitizers on. The MLPerf Tiny models build exactly as
    `dmxgen verify` does (-O2, kernels force-inlined and specialised per layer); the larger
    dcsr/ models build at -O1 with DMX_NO_FORCE_INLINE (the same kernels, called), which
    takes a fifth of the compile time. Formats that print the same C share one build."""
    flags = {"opt": "-O2"} if model.parent.name == "mlperf_tiny" else {
        "opt": "-O1", "extra": ("-DDMX_NO_FORCE_INLINE",)}
    graph = load_tflite(model)
    verified: dict[str, dict] = {}
    for fmt in FORMATS:
        out = tmp_path / fmt
        manifest = export(graph, out, source=model, fmt=fmt)
        assert manifest["format"] == fmt
        digest = c_sources_digest(out)
        if digest not in verified:
            verified[digest] = verify_folder(out, n_inputs=8, seed=0, **flags)
        result = verified[digest]
        assert_bit_exact(result)
        assert result["inputs"] == 8 and result["expected_from"] == "model"


@pytest.mark.shared
def test_sparse_l_90_dcsr_weights_are_a_quarter_of_dense(tmp_path):
    model = shared_or_skip("dcsr/sparse_l_90.tflite")
    graph = load_tflite(model)
    dense = export(graph, tmp_path / "dense", source=model, fmt="dense")
    dcsr = export(graph, tmp_path / "dcsr", source=model, fmt="dcsr")
    pruned = [d["index"] for d in dense["layers"] if d.get("sparsity", 0) >= 0.7]
    assert len(pruned) == 6  # the five 1x1 convolutions and the classifier (shared/models/README.md)
    assert all(dcsr["layers"][i]["format"] == "dcsr" for i in pruned)
    dense_bytes = sum(dense["layers"][i]["weight_bytes"] for i in pruned)
    dcsr_bytes = sum(dcsr["layers"][i]["weight_bytes"] for i in pruned)
    assert dense_bytes == 579600
    assert 4 * dcsr_bytes <= dense_bytes, (dcsr_bytes, dense_bytes)
