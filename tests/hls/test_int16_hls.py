"""The two int16 (TFLite 16x8) models of tests/firmware/test_int16_models.py in HLS C simulation.

The DS-CNN keyword spotter (float32 in: the host QUANTIZE to int16; conv, depthwise, average pool,
FC, int16 softmax; the host DEQUANTIZE out) and the conv autoencoder (int16 ports; conv, TRANSPOSE_CONV,
LEAKY_RELU) exported with `--target hls` and run by `make -C hls csim`: every output value of the
held-out inputs and of the export's random vectors bit-exact against the reference, on both
interfaces. The models are built as the firmware test builds them (the same seeds and calibration).
Also: the 16x8 products in the sparse formats, a top with int8 and int16 ports and FIFOs side by side,
a wrong int16 expected code failing the testbench, and the refusal of a kernel without int16.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends.hls_csim import run_csim
from dmxgen.frontends.tflite import load_tflite
from dmxgen.targets import export

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))  # as pytest imports that folder
from test_int16_models import KINDS, MODELS, build_tflite, model_input, smooth_inputs  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None,
                                reason="HLS csim needs g++ and make")
RANDOM_VECTORS = 2  # the export's seeded vectors, before the held-out ones


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (model.tflite, held-out model inputs (.npz), the loaded graph), made once."""
    made = {}

    def get(name: str):
        if name not in made:
            d = tmp_path_factory.mktemp(name)
            path, net, scales, rng = build_tflite(name, d)
            g = load_tflite(path)
            held = np.stack([model_input(x, scales["input_q"], net.float_io)
                             for x in smooth_inputs(rng, net.input_shape, 4)])  # [vector, *input shape]
            npz = d / "held_out.npz"
            np.savez(npz, **{g.inputs[0]: held})
            made[name] = (path, npz, g)
        return made[name]

    return get


@pytest.mark.parametrize("interface", ["array", "stream"])
@pytest.mark.parametrize("name", list(MODELS))
def test_int16_model_is_bit_exact_in_hls_csim(built, tmp_path, name, interface):
    path, npz, g = built(name)
    out = tmp_path / "out"
    manifest = export(path, out, targets=("hls",), input_files=(str(npz),), n_vectors=RANDOM_VECTORS,
                      hls={"interface": interface})["hls"]
    hls_kinds = {layer["op"] for layer in manifest["layers"]}
    assert set(KINDS[name]) - {"quantize", "dequantize"} <= hls_kinds, hls_kinds  # every int16 kind is a layer
    assert all(p["dtype"] == "int16" for p in manifest["inputs"] + manifest["outputs"])
    host = {p["host"] for p in manifest["inputs"] + manifest["outputs"]}
    assert host == ({"quantize", "dequantize"} if name == "ds_cnn" else {None})
    r = run_csim(out, opt="-O1")
    vectors = RANDOM_VECTORS + 4
    values = vectors * sum(g.tensors[n].size for n in g.outputs)
    assert r.returncode == 0 and f"PASS: {vectors} vectors, {values} output values bit-exact" in r.stdout, (
        r.stdout[-3000:] + r.stderr[-3000:])


def test_a_wrong_int16_expected_value_fails_the_csim(built, tmp_path):
    """The testbench compares int16 codes to the bit: one expected code off by one is a FAIL."""
    path, npz, g = built("autoencoder")
    out = tmp_path / "out"
    export(path, out, targets=("hls",), input_files=(str(npz),), n_vectors=1)
    dat = out / "hls" / "tb_data" / "expected.dat"
    rows = [line.split() for line in dat.read_text().splitlines()]
    assert max(abs(int(v)) for v in rows[-1]) > 127  # int16 codes beyond int8's range
    want = int(rows[-1][3])
    rows[-1][3] = str(want + 1 if want < 32767 else want - 1)
    dat.write_text("".join(" ".join(r) + "\n" for r in rows))
    r = run_csim(out, opt="-O1")
    assert r.returncode != 0 and "FAIL: 1 of" in r.stdout, r.stdout[-2000:]
    ref = reference.run(g, [np.load(npz)[g.inputs[0]][-1]])[g.outputs[0]].reshape(-1)
    assert int(ref[3]) == want  # the value the testbench was given was the reference's


@pytest.mark.parametrize("fmt", ["csr", "dcsr"])
def test_int16_sparse_weight_formats_are_bit_exact(built, tmp_path, fmt):
    """The 16x8 matrix products read every weight format (int64 accumulators in dmx_matvec.h); the C
    target's 16x8 kernels are dense only."""
    path, npz, g = built("ds_cnn")
    out = tmp_path / "out"
    manifest = export(path, out, targets=("hls",), fmt=fmt, min_sparsity=0.0, input_files=(str(npz),),
                      n_vectors=RANDOM_VECTORS)["hls"]
    formats = {layer["op"]: layer["format"] for layer in manifest["layers"]}
    assert formats["conv2d"] == formats["fully_connected"] == fmt
    r = run_csim(out, opt="-O1")
    vectors = RANDOM_VECTORS + 4
    assert r.returncode == 0 and f"PASS: {vectors} vectors" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_a_layer_whose_hls_kernel_has_no_int16_is_refused(built, monkeypatch):
    """A kind registers the dtypes its kernel runs; an int16 layer of an int8-only kernel stops the export."""
    from dmxgen.backends import hls_ops
    from dmxgen.backends.hls_plan import build_plan
    from dmxgen.errors import DmxError

    _, _, g = built("autoencoder")
    monkeypatch.setitem(hls_ops.HLS_BUILDERS.entries["prelu"].info, "dtypes", ("int8",))
    with pytest.raises(DmxError, match=r"layer 'prelu_3' \(prelu\) computes in int16; its HLS kernel runs int8 only"):
        build_plan(g, "dense", 1)


@pytest.mark.parametrize("interface", ["array", "stream"])
def test_int8_and_int16_ports_and_tensors_in_one_top(tmp_path, interface):
    """int8 in, QUANTIZE to int16, an int16 ADD reading that tensor twice (two FIFOs of one producer),
    then an int16 output and, after a QUANTIZE back, an int8 one: each port, buffer and FIFO has its
    tensor's type."""
    from dmxgen.testing.tflite_builder import ModelBuilder

    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 3], "int8", scale=0.05, zero_point=3)
    q = m.tensor("q", [1, 4, 4, 3], "int16", scale=0.05 / 256, zero_point=0)
    s = m.tensor("s", [1, 4, 4, 3], "int16", scale=0.07 / 256, zero_point=0)
    y = m.tensor("y", [1, 4, 4, 3], "int8", scale=0.08, zero_point=-5)
    m.op("QUANTIZE", [x], [q])
    m.op("ADD", [q, q], [s])
    m.op("QUANTIZE", [s], [y])
    path = m.save(tmp_path / "mixed.tflite", [x], [y, s])
    g = load_tflite(path)
    assert [op.kind for op in g.ops] == ["requantize", "add", "requantize"]
    out = tmp_path / "out"
    manifest = export(path, out, targets=("hls",), n_vectors=4, hls={"interface": interface})["hls"]
    assert [p["dtype"] for p in manifest["inputs"] + manifest["outputs"]] == ["int8", "int8", "int16"]
    values = [reference.run(g, [np.full((1, 4, 4, 3), v, np.int8)])["s"] for v in (-128, 127)]
    assert min(int(a.min()) for a in values) < -128 or max(int(a.max()) for a in values) > 127  # int16 codes
    r = run_csim(out, opt="-O1")
    assert r.returncode == 0 and "PASS: 4 vectors, 384 output values bit-exact" in r.stdout, (
        r.stdout[-3000:] + r.stderr[-3000:])
