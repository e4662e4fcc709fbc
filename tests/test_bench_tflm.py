"""tools/bench_tflm.py: TFLite Micro built from ../shared/peers/tflm, run on the emulated Cortex-M55."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, shared_or_skip

sys.path.insert(0, str(ROOT / "tools"))
import bench_tflm  # noqa: E402


def _needs_peer():
    if bench_tflm.check_sources(bench_tflm.DEFAULT_SRC):
        pytest.skip(f"no TFLM sources at {bench_tflm.DEFAULT_SRC} (../shared/peers/tflm)")
    if missing := bench_tflm.missing_tools():
        pytest.skip(f"needs {', '.join(missing)}")
    if problem := bench_tflm.check_cxx_headers():
        pytest.skip(problem)


def test_source_lists_follow_the_make_files():
    """The CMSIS-NN build swaps in kernels/cmsis_nn/ for their reference namesakes and adds CMSIS-NN's C."""
    if bench_tflm.check_sources(bench_tflm.DEFAULT_SRC):
        pytest.skip("no TFLM sources (../shared/peers/tflm)")
    ref = bench_tflm.source_files(bench_tflm.DEFAULT_SRC, "reference")
    cmsis = bench_tflm.source_files(bench_tflm.DEFAULT_SRC, "cmsis-nn")
    names = {p.relative_to(bench_tflm.DEFAULT_SRC).as_posix() for p in ref}
    assert "tflite-micro/tensorflow/lite/micro/kernels/conv.cc" in names
    assert "tflite-micro/tensorflow/lite/micro/micro_interpreter.cc" in names
    assert "tflite-micro/tensorflow/lite/array.cc" not in names  # TF_LITE_STATIC_MEMORY builds leave it out
    assert not any(n.endswith("_test.cc") for n in names)
    cnames = {p.relative_to(bench_tflm.DEFAULT_SRC).as_posix() for p in cmsis}
    assert "tflite-micro/tensorflow/lite/micro/kernels/cmsis_nn/conv.cc" in cnames
    assert "tflite-micro/tensorflow/lite/micro/kernels/conv.cc" not in cnames
    assert "tflite-micro/tensorflow/lite/micro/kernels/conv_common.cc" in cnames
    assert any(n.startswith("CMSIS-NN/Source/") for n in cnames)
    assert not any(n.endswith(("_f16.c", "_f32.c")) for n in cnames)


def test_missing_sources_are_one_line(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_tflm.py"), str(model), "--tflm-src",
                        str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 2 and "no tflite-micro" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.peer
@pytest.mark.firmware
def test_ad01_runs_and_matches_tflm_python(tmp_path):
    """One Invoke() of ad01 with CMSIS-NN kernels: a positive count, per-op counts inside the total,
    arena_used_bytes, and the output the TFLM Python interpreter gives for the same input, to the bit."""
    _needs_peer()
    pytest.importorskip("tflite_micro", reason="the TFLM Python interpreter (dev extra) is the golden here")
    from dmxgen.goldens import run_golden

    model = shared_or_skip("mlperf_tiny/ad01_int8.tflite")
    x = np.random.default_rng(3).integers(-128, 128, size=(1, 640), dtype=np.int64).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_tflm.py"), str(model), "--kernels", "cmsis-nn",
                        "--input", str(tmp_path / "x.npy"), "--json", "-o", str(tmp_path / "tflm.json")],
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-3000:]
    (result,) = json.loads(r.stdout)
    assert result == json.loads((tmp_path / "tflm.json").read_text())[0]
    assert result["kernels"] == "cmsis-nn" and result["instructions"] > 0
    assert len(result["ops"]) == result["operators"] > 0
    assert all(o["instructions"] > 0 for o in result["ops"])
    assert sum(o["instructions"] for o in result["ops"]) <= result["instructions"]
    assert 0 < result["arena_used_bytes"] < bench_tflm.ARENA_BYTES
    assert result["flash"] > model.stat().st_size  # the flatbuffer lives in flash
    (want,) = run_golden(model, [x], golden="tflm")
    assert result["output"] == want.astype(np.int8).reshape(-1).tolist()


def test_harness_records_are_parsed():
    text = ("TFLM arena_used_bytes=9268 ops=2\nOP 0 FULLY_CONNECTED 1024 1000\nOP 1 SOFTMAX 2048 2000\n"
            "TOTAL 4096 4000\nOUTPUT 0 -128 5 127\nOUTPUT 3 0\nPASS\n")
    r = bench_tflm.parse_run(text)
    assert (r["arena_used_bytes"], r["operators"], r["instructions"], r["ticks"]) == (9268, 2, 4000, 4096)
    assert [(o["op"], o["instructions"]) for o in r["ops"]] == [("FULLY_CONNECTED", 1000), ("SOFTMAX", 2000)]
    assert r["output"] == [-128, 5, 127, 0]
    with pytest.raises(bench_tflm.BenchError, match="no TFLM/TOTAL line"):
        bench_tflm.parse_run("FAIL AllocateTensors\n")


def test_every_op_of_the_shared_models_can_be_registered():
    """The harness registers ops through MicroMutableOpResolver methods read from its header."""
    if bench_tflm.check_sources(bench_tflm.DEFAULT_SRC):
        pytest.skip("no TFLM sources (../shared/peers/tflm)")
    methods = bench_tflm.resolver_methods(bench_tflm.DEFAULT_SRC)
    assert methods["CONV_2D"] == ("AddConv2D", "Register_CONV_2D")
    for rel in ("mlperf_tiny/kws_ref_model.tflite", "dcsr/mobilenetv2_cifar10_sparse90.tflite"):
        ops, n_operators = bench_tflm.model_ops(shared_or_skip(rel).read_bytes())
        assert ops and all(op in methods for op in ops) and n_operators >= len(ops)
        header = bench_tflm.model_header(ops, n_operators, methods, 490, 1024)
        assert header.count("    X(") == len(ops)
    with pytest.raises(bench_tflm.BenchError, match="NOT_AN_OP"):
        bench_tflm.model_header(["NOT_AN_OP"], 1, methods, 1, 1024)
