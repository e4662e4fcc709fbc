"""Every MLPerf Tiny model and sparse_{s,m,l}_90, exported dense and dCSR, runs on the
emulated Cortex-M55 and gives, to the bit, what the numpy reference gives."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _fw_harness import copy_model, corrupt_expected, firmware_marks

from tests.conftest import shared_or_skip
from dmxgen import firmware, reference
from dmxgen.pipeline import load_model

pytestmark = [*firmware_marks, pytest.mark.shared]

MODELS = [
    "mlperf_tiny/kws_ref_model.tflite",
    "mlperf_tiny/vww_96_int8.tflite",
    "mlperf_tiny/pretrainedResnet_quant.tflite",
    "mlperf_tiny/pretrainedResnet_large_int8.tflite",
    "mlperf_tiny/ad01_int8.tflite",
    "dcsr/sparse_s_90.tflite",
    "dcsr/sparse_m_90.tflite",
    "dcsr/sparse_l_90.tflite",
]
# in `make test`; the others (the largest images: 15-40 s each) run in `make test-slow`
FAST = {"kws_ref_model", "pretrainedResnet_quant", "ad01_int8", "sparse_s_90"}


def export(model: Path, out: Path, fmt: str) -> Path:
    cmd = [sys.executable, "-m", "dmxgen.cli", "export", str(model), "-o", str(out), "--format", fmt,
           "--vectors", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(model, format) -> an exported folder, made once per session."""
    made: dict[tuple[str, str], Path] = {}

    def get(rel: str, fmt: str) -> Path:
        if (rel, fmt) not in made:
            model = shared_or_skip(rel)
            made[rel, fmt] = export(model, tmp_path_factory.mktemp(f"{model.stem}-{fmt}") / "out", fmt)
        return made[rel, fmt]

    return get


def reference_output(rel: str, folder: Path) -> np.ndarray:
    """The numpy reference on the folder's sample input (test vector 0), computed here, not read from expected.h."""
    graph = load_model(str(shared_or_skip(rel)))
    manifest = json.loads((folder / "manifest.json").read_text())
    x = np.load(folder / manifest["test_vectors"]["inputs"])[manifest["sample"]["index"]]
    (y,) = reference.run(graph, [x]).values()
    return y.reshape(-1)


def same_bits(got: list, want: np.ndarray) -> bool:
    got_arr = np.array(got, dtype=want.dtype)
    return got_arr.shape == want.shape and got_arr.tobytes() == want.tobytes()


@pytest.mark.parametrize("fmt", ["dense", "dcsr"])
@pytest.mark.parametrize("rel", [pytest.param(m, id=Path(m).stem, marks=() if Path(m).stem in FAST else pytest.mark.slow)
                                 for m in MODELS])
def test_model_passes_on_the_m55(exported, tmp_path, rel, fmt):
    folder = exported(rel, fmt)
    r = firmware.run(folder, build_dir=tmp_path / "build", timeout=300)
    assert r.passed and r.exit_status == 0, r.log[-2000:]
    assert same_bits(r.outputs, reference_output(rel, folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [(c.index, c.name) for c in r.layers] == [(m["index"], m["c_name"]) for m in manifest["layers"]]
    assert sum(c.instructions for c in r.layers) <= r.total_instructions


def test_wrong_expected_output_of_a_real_model_fails(exported, tmp_path):
    folder = copy_model(exported("mlperf_tiny/kws_ref_model.tflite", "dense"), tmp_path / "kws")
    old, new = corrupt_expected(folder, index=5)
    r = firmware.run(folder, build_dir=tmp_path / "build", timeout=300)
    assert not r.passed and r.exit_status == 1
    assert r.mismatches == [(5, old, new)]


def test_float_output_mismatch_is_reported(exported, tmp_path):
    folder = copy_model(exported("dcsr/sparse_s_90.tflite", "dcsr"), tmp_path / "s90")
    corrupt_expected(folder, index=0)
    r = firmware.run(folder, build_dir=tmp_path / "build", timeout=300)
    assert not r.passed and r.exit_status == 1 and r.output_type == "float32"
    assert [m[0] for m in r.mismatches] == [0]


def test_real_model_counts_repeat(exported, tmp_path):
    # sparse_l_90 dense still runs ~37M instructions with MVE: enough to wrap the 24-bit SysTick
    folder = exported("dcsr/sparse_l_90.tflite", "dense")
    first = firmware.run(folder, build_dir=tmp_path / "build", timeout=300)
    second = firmware.run(folder, build_dir=tmp_path / "build", timeout=300)
    assert first.passed and second.passed
    assert first.counts() == second.counts() and first.total_ticks == second.total_ticks
    assert first.total_instructions > 2**24  # long enough to cross SysTick wraps


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m7"])
def test_real_model_builds_for_other_cores(exported, tmp_path, cpu):
    """dCSR kernels and float I/O (QUANTIZE/DEQUANTIZE) compile warning-free for the scalar cores."""
    elf = firmware.build(exported("dcsr/sparse_s_90.tflite", "dcsr"), cpu=cpu, build_dir=tmp_path / cpu)
    assert elf.is_file() and elf.stat().st_size > 0
