"""write_hls options and errors, determinism, warning-free C++, hls/Makefile behaviour, the CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen import reference
from dmxgen.backends.hls import write_hls
from dmxgen.backends.hls_csim import HARNESS, run_csim
from dmxgen.backends.hls_plan import c_ident
from dmxgen.cli import main
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder, small_cnn
from tests.backends.test_multi_io import two_input_add, two_output_add


@pytest.fixture
def cnn(tmp_path):
    m = small_cnn(seed=2, sparsity=0.6)
    path = m.save(tmp_path / "cnn.tflite", [0], [len(m.sg.tensors) - 1])
    graph = load_tflite(path)
    rng = np.random.default_rng(0)
    ins = [[rng.integers(-128, 128, (1, 12, 12, 3)).astype(np.int8)] for _ in range(3)]
    return path, graph, ins, [reference.run(graph, v) for v in ins]


def write(graph, ins, exp, out, **kw):
    return write_hls(graph, out, sample_inputs=ins, expected_outputs=exp, **kw)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_manifest(cnn, tmp_path):
    _, graph, ins, exp = cnn
    m = write(graph, ins, exp, tmp_path / "out", weight_format="csr", interface="stream", part="xc7z020clg400-1",
              clock_ns=8.0, reuse_factor=2)
    hls = tmp_path / "out" / "hls"
    for name in ("top.h", "top.cpp", "tb.cpp", "run_hls.tcl", "README.md", "manifest.json", "tb_data/input.dat",
                 "tb_data/expected.dat", "kernels/dmx_stream.h", "kernels/dmx_matvec.h"):
        assert (hls / name).is_file(), name
    assert len((hls / "tb_data" / "input.dat").read_text().splitlines()) == 3
    assert [la["op"] for la in m["layers"]] == ["conv2d", "depthwise_conv2d", "avg_pool2d", "fully_connected",
                                                 "softmax"]  # the reshape is an alias, no layer
    fc = m["layers"][3]
    assert fc["format"] == "csr" and fc["bytes"] == 3 * fc["nnz"] + 2 * (fc["rows"] + 1)
    assert m["layers"][1]["format"] == "dense"  # depthwise has no sparse kernel
    assert m["interface"] == "stream" and m["reuse_factor"] == 2 and m["vectors"] == 3
    tcl = (hls / "run_hls.tcl").read_text()
    assert "set part xc7z020clg400-1" in tcl and "set clock_ns 8.0" in tcl
    for step in ("set_top dmx_top", "csim_design", "csynth_design", "add_files -tb $here/tb_data"):
        assert step in tcl
    top = (hls / "top.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in top and "#pragma HLS INTERFACE axis port=in0" in top
    conv = next((hls / "layers").glob("conv2d_*.h")).read_text()
    assert "dmx::matvec_csr<8, 27, " in conv and "static const int8_t w_values[" in conv


def test_min_sparsity_keeps_denser_layers_dense(cnn, tmp_path):
    _, graph, ins, exp = cnn
    m = write(graph, ins, exp, tmp_path, weight_format="dcsr", min_sparsity=0.99)
    weighted = [la for la in m["layers"] if la["format"]]
    assert {la["format"] for la in weighted} == {"dense"}
    assert all("below --min-sparsity 0.99" in la["reason"] or "no dcsr kernel" in la["reason"] for la in weighted)
    with pytest.raises(DmxError, match="min_sparsity 2 must be between 0 and 1"):
        write(graph, ins, exp, tmp_path, min_sparsity=2)


def test_layer_identifiers_are_valid_and_unique():
    taken = {"dmx_top"}
    names = ["conv/1", "Conv_1", "conv_1", "and", "9x", "dmx_top", "a::b", "\u00fcber", ""]
    idents = [c_ident(n, taken) for n in names]
    assert idents == ["conv_1", "Conv_1_1", "conv_1_2", "l_and", "l_9x", "dmx_top_1", "a_b", "ber", "layer"]
    assert len({i.lower() for i in idents}) == len(idents)  # header files differ on case-insensitive disks too


def test_two_writes_are_byte_identical(cnn, tmp_path):
    _, graph, ins, exp = cnn
    for interface in ("array", "stream"):
        a, b = tmp_path / f"a_{interface}", tmp_path / f"b_{interface}"
        write(graph, ins, exp, a, weight_format="dcsr", interface=interface)
        write(graph, ins, exp, b, weight_format="dcsr", interface=interface)
        assert tree(a) == tree(b)


def test_rewrite_replaces_stale_layers(cnn, tmp_path):
    _, graph, ins, exp = cnn
    write(graph, ins, exp, tmp_path, interface="stream")
    (tmp_path / "hls" / "layers" / "old_layer.h").write_text("stale")
    write(graph, ins, exp, tmp_path, interface="array")
    assert not (tmp_path / "hls" / "layers" / "old_layer.h").exists()
    assert not (tmp_path / "hls" / "kernels" / "dmx_stream.h").exists()


@pytest.mark.parametrize("kw,message", [
    ({"weight_format": "rle"}, "unknown weight format 'rle'; choose one of dense, csr, dcsr, dcsr_gather, auto"),
    ({"weight_format": "dcsr_gather"}, "weight format dcsr_gather: this target has no kernel for dCSR's gather-offset"),
    ({"interface": "axi"}, "unknown interface 'axi'; choose one of array, stream"),
    ({"reuse_factor": 0}, "reuse factor 0 must be an integer >= 1"),
    ({"clock_ns": -1.0}, "clock period -1.0 ns must be a positive number"),
    ({"part": "xc7; rm -rf /"}, "is not an FPGA part name"),
])
def test_bad_options_are_one_line_errors(cnn, tmp_path, kw, message):
    _, graph, ins, exp = cnn
    with pytest.raises(DmxError) as e:
        write(graph, ins, exp, tmp_path, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "hls").exists()


def test_bad_samples_are_errors(cnn, tmp_path):
    _, graph, ins, exp = cnn
    with pytest.raises(DmxError, match="3 sample inputs but 2 expected outputs"):
        write(graph, ins, exp[:2], tmp_path)
    with pytest.raises(DmxError, match=r"sample input 0 for 'input' has 10 values, shape \[1, 12, 12, 3\] needs 432"):
        write(graph, [np.zeros(10, np.int8)], exp[:1], tmp_path)
    with pytest.raises(DmxError, match="must be int8 values"):
        write(graph, [np.full((1, 12, 12, 3), 300)], exp[:1], tmp_path)
    with pytest.raises(DmxError, match="no sample inputs given"):
        write(graph, [], [], tmp_path)


def test_float_op_inside_the_graph_names_the_layer(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    f = m.tensor("f", [1, 8], "float32")
    m.op("DEQUANTIZE", [x], [f])
    q = m.tensor("q", [1, 8], scale=0.2, zero_point=1)
    m.op("QUANTIZE", [f], [q])
    y = m.tensor("y", [1, 8], scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [q], [y], beta=1.0)
    graph = load_tflite(m.save(tmp_path / "f.tflite", [x], [y]))
    v = [np.zeros((1, 8), np.int8)]
    with pytest.raises(DmxError, match=r"HLS backend: layer 'dequantize_0' \(dequantize\) works on the float32 "
                                       r"tensor 'f'"):
        write(graph, [v], [reference.run(graph, v)], tmp_path)


def test_float_input_must_go_to_a_quantize(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 2], "float32")
    y = m.tensor("y", [1, 2], "float32")
    m.op("MEAN", [x, m.tensor("axes", [2], "int32", data=[1, 2])], [y], keepDims=False)
    graph = load_tflite(m.save(tmp_path / "fm.tflite", [x], [y]))
    v = [np.zeros((1, 4, 4, 2), np.float32)]
    with pytest.raises(DmxError, match=r"float32 input 'x' must feed exactly one QUANTIZE \(the host quantizes it\); "
                                       r"it feeds 'mean_0'"):
        write(graph, [v], [reference.run(graph, v)], tmp_path)


def test_identity_model_is_refused(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 4], scale=0.1, zero_point=0)
    y = m.tensor("y", [2, 2], scale=0.1, zero_point=0)
    m.op("RESHAPE", [x, m.tensor("s", [2], "int32", data=[2, 2])], [y], newShape=[2, 2])
    graph = load_tflite(m.save(tmp_path / "id.tflite", [x], [y]))
    v = [np.zeros((1, 4), np.int8)]
    with pytest.raises(DmxError, match="output 'y' carries the same values as 'x'"):
        write(graph, [v], [reference.run(graph, v)], tmp_path)


# --- hls/Makefile -------------------------------------------------------------------------------


def make(*args, cwd=None, env=None):
    return subprocess.run(["make", "--no-print-directory", "-C", str(HARNESS), *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


def test_make_without_model_says_so():
    r = make("csim")
    assert r.returncode != 0 and "MODEL is not set: make -C hls csim MODEL=path/to/OUT" in r.stderr


def test_make_with_missing_or_wrong_model(tmp_path):
    r = make("csim", f"MODEL={tmp_path / 'nowhere'}")
    assert r.returncode != 0 and "does not exist" in r.stderr
    r = make("csim", f"MODEL={tmp_path}")
    assert r.returncode != 0 and "holds no HLS export (no hls/top.cpp)" in r.stderr


def test_make_vitis_without_vitis_hls(cnn, tmp_path):
    if shutil.which("vitis_hls"):
        pytest.skip("vitis_hls is installed here")
    _, graph, ins, exp = cnn
    write(graph, ins, exp, tmp_path)
    r = make("csim", f"MODEL={tmp_path}", "TOOL=vitis")
    assert r.returncode == 2 and "vitis_hls is not on PATH" in r.stderr
    assert not (tmp_path / "hls" / "build").exists()


def test_make_resolves_a_relative_model_from_the_callers_folder(cnn, tmp_path):
    _, graph, ins, exp = cnn
    write(graph, ins, exp, tmp_path / "out", interface="stream", weight_format="dcsr")
    r = make("csim", "MODEL=out/hls", "OPT=-O1", cwd=tmp_path, env={**os.environ, "PWD": str(tmp_path)})
    assert r.returncode == 0 and "PASS: 3 vectors, 30 output values bit-exact" in r.stdout, r.stdout + r.stderr


# --- the CLI --------------------------------------------------------------------------------------


def _export_has_target() -> bool:
    try:
        from dmxgen.commands.export import command
    except ImportError:
        return False
    return any("--target" in getattr(p, "opts", ()) for p in command.params)


@pytest.mark.skipif(not _export_has_target(), reason="`dmxgen export` has no --target option yet")
def test_cli_export_target_hls(cnn, tmp_path):
    path, *_ = cnn
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["export", str(path), "-o", str(out), "--target", "hls"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (out / "hls" / "top.cpp").is_file() and (out / "hls" / "tb_data" / "expected.dat").is_file()
    rc = run_csim(out, opt="-O1")
    assert rc.returncode == 0 and "PASS" in rc.stdout, rc.stdout + rc.stderr


def _cli_export(model: Path, out: Path, target: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(model), "-o", str(out),
                           "--target", target], capture_output=True, text=True)


@pytest.mark.parametrize("build,values", [(two_input_add, 8 * 8), (two_output_add, 8 * 16)])
def test_cli_hls_exports_several_inputs_and_outputs_and_csim_passes(tmp_path, build, values):
    r = _cli_export(build(tmp_path), tmp_path / "out", "hls")
    assert r.returncode == 0, r.stderr
    rc = run_csim(tmp_path / "out", opt="-O1")
    assert rc.returncode == 0 and f"PASS: 8 vectors, {values} output values bit-exact" in rc.stdout, rc.stdout


@pytest.mark.parametrize("target", ["c,hls", "hls,c"])
def test_cli_c_and_hls_of_a_two_input_model_land_in_one_folder(tmp_path, target):
    model = two_input_add(tmp_path)
    r = _cli_export(model, tmp_path / "out", target)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["add2.tflite", "out"]  # no temporary folder left
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [x["name"] for x in manifest["inputs"]] == ["a", "b/in"] and manifest["hls"]["inputs"][1]["name"] == "b/in"
    assert (tmp_path / "out" / "model.c").is_file() and (tmp_path / "out" / "hls" / "top.cpp").is_file()
