"""dmxgen/pipeline.py: every target prints the same lowered graph and vectors; exports commit once."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dmxgen import pipeline, reference
from dmxgen.backends.c_layers import scratch_bytes
from dmxgen.backends.hls_csim import run_csim
from dmxgen.testing.tflite_builder import small_cnn
from tests.conftest import shared_or_skip

DMXGEN = [sys.executable, "-m", "dmxgen.cli"]


@pytest.mark.shared
def test_prepare_lowers_plans_and_makes_the_reference_vectors(tmp_path):
    path = shared_or_skip("dcsr/mobilenetv2_cifar10_sparse90.tflite")
    p = pipeline.prepare(path, n_vectors=1, seed=3, scratch=scratch_bytes)
    assert p.passes == ["lower_float_reduce_max"] and len(p.lowered.ops) < len(p.graph.ops)
    assert p.plan is not None and p.plan.arena_size > 0 and p.source["sha256"] == pipeline.sha256(path)
    (x,), (y,) = p.vectors.inputs[0], p.vectors.outputs[0]
    assert np.array_equal(y, reference.run(p.graph, [x])[p.graph.outputs[0]])


@pytest.mark.shared
def test_mobilenet_hls_export_gets_the_lowered_graph_and_csim_passes(tmp_path):
    """Before the pipeline the HLS path skipped lowering and refused the float32 dequantize tensor."""
    model, out = shared_or_skip("dcsr/mobilenetv2_cifar10_sparse90.tflite"), tmp_path / "out"
    r = subprocess.run(DMXGEN + ["export", str(model), "--target", "hls", "-o", str(out), "--vectors", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    kinds = [x["op"] for x in json.loads((out / "hls" / "manifest.json").read_text())["layers"]]
    assert "dequantize" not in kinds and "reduce_max" in kinds
    rc = run_csim(out, opt="-O1")
    assert rc.returncode == 0 and "PASS: 1 vectors, 10 output values bit-exact" in rc.stdout, rc.stdout[-2000:]


def test_c_and_hls_are_committed_together_and_stale_siblings_go(tmp_path):
    model = small_cnn(seed=2)
    path = model.save(tmp_path / "m.tflite", [0], [len(model.sg.tensors) - 1])
    out = tmp_path / "out"
    for kind in ("tmp", "hls", "old"):  # left by an export killed mid-way
        (tmp_path / f".out.{kind}-abc").mkdir()
    (tmp_path / ".other.tmp-x").mkdir()  # another output's: not ours to remove
    r = subprocess.run(DMXGEN + ["export", str(path), "--target", "c,hls", "-o", str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-x", "m.tflite", "out"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hls"]["target"] == "hls" and manifest["layers"]
    # the C test vectors and the HLS testbench data hold the same first vector
    first_in = np.load(out / "test_vectors" / "inputs.npy")[0].reshape(-1)
    first_line = (out / "hls" / "tb_data" / "input.dat").read_text().splitlines()[0]
    assert [int(v) for v in first_line.split()] == first_in.tolist()


def test_a_failing_hls_target_leaves_the_previous_c_export_untouched(tmp_path):
    model = small_cnn(seed=2)
    path = model.save(tmp_path / "m.tflite", [0], [len(model.sg.tensors) - 1])
    out = tmp_path / "out"
    assert subprocess.run(DMXGEN + ["export", str(path), "-o", str(out)], capture_output=True).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = subprocess.run(DMXGEN + ["export", str(path), "--target", "c,hls", "--part", "bad part!", "-o", str(out),
                                 "--seed", "5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "is not an FPGA part name" in r.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite", "out"]


def test_the_storage_policy_is_decided_once_before_the_model_is_read(tmp_path):
    """Prepared.storage is the export's StoragePolicy (INT4 packed); bad options fail before any load."""
    from dmxgen.codecs.policy import StoragePolicy
    from dmxgen.errors import DmxError

    model = small_cnn(seed=2)
    path = model.save(tmp_path / "m.tflite", [0], [len(model.sg.tensors) - 1])
    p = pipeline.prepare(path, fmt="dcsr", min_sparsity=0.3)
    assert p.storage == StoragePolicy("dcsr", 0.3, pack_int4=True)
    missing = tmp_path / "missing.tflite"
    with pytest.raises(DmxError, match=r"^unknown weight format 'rle'; choose one of dense, csr, dcsr, dcsr_gather, auto$"):
        pipeline.prepare(missing, fmt="rle")
    with pytest.raises(DmxError, match=r"^--min-sparsity must be between 0 and 1, got 1.5$"):
        pipeline.prepare(missing, min_sparsity=1.5)
