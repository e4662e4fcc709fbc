"""The exported folder as a product: layout, determinism, atomic writes, names, CLI, verify's failure modes."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen.targets import export
from dmxgen.backends.c_names import Namer, c_comment, c_ident
from dmxgen.backends.host import HostBuildError
from dmxgen.targets import verify_folder
from dmxgen.cli import main
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder, small_cnn
from tests.backends.conftest import assert_bit_exact, needs_gcc, save

pytestmark = needs_gcc

DMXGEN = [sys.executable, "-m", "dmxgen.cli"]
IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture
def cnn(tmp_path) -> Path:
    m = small_cnn(seed=3, sparsity=0.75)
    return m.save(tmp_path / "cnn.tflite", [0], [len(m.sg.tensors) - 1])


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(*args):
    return subprocess.run(DMXGEN + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def test_folder_layout_and_manifest(cnn, tmp_path):
    out = tmp_path / "out"
    r = run_cli("export", cnn, "-o", out, "--format", "dcsr", "--min-sparsity", "0.5")
    assert r.returncode == 0, r.stderr
    names = set(files_of(out))
    assert {"model.c", "model.h", "kernels.c", "kernels.h", "input.h", "expected.h", "manifest.json",
            "headers/headers.h", "test_vectors/inputs.npy", "test_vectors/expected.npy"} <= names
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["sha256"] and m["format"] == "dcsr" and m["semantics"] == "tflite"
    assert m["dmxgen_version"]
    for layer in m["layers"]:
        assert (out / "headers" / f"{layer['c_name']}.h").exists() or layer["op"] == "reshape"
        assert layer["weight_bytes"] == sum(v for k, v in layer["arrays"].items() if k.endswith(
            ("__values", "__col_idx", "__row_ptr", "__delta_indices", "__bitmaps", "__bitmasks",
             "__group_minimums", "__row_offsets", "__nnze")))
    fc = next(layer for layer in m["layers"] if layer["op"] == "fully_connected")
    assert fc["format"] == "dcsr" and fc["sparsity"] >= 0.5
    model_h = (out / "model.h").read_text()
    assert f"#define DMX_ARENA_SIZE {m['arena_size']}" in model_h
    assert f"#define DMX_NUM_LAYERS {len(m['layers'])}" in model_h
    assert "int dmx_model_run(const dmx_input_t *in, dmx_output_t *out);" in model_h
    model_c = (out / "model.c").read_text()
    assert model_c.count("DMX_LAYER_BEGIN(") == model_c.count("DMX_LAYER_END(") == len(m["layers"])
    # only the kernels this model uses
    kernels = (out / "kernels.h").read_text() + (out / "kernels.c").read_text()
    assert "dmx_depthwise_conv2d_s8" in kernels and "dmx_pad_s8" not in kernels and "dmx_mean_s8" not in kernels
    # weights are const and tagged for placement
    assert re.search(r"static const int8_t dmx_l_\w+__values\[\d+\] DMX_WEIGHT_SECTION", (
        out / "headers" / f"{fc['c_name']}.h").read_text())
    # every arena tensor lies inside the arena
    for t in m["tensors"]:
        if t["storage"] == "arena":
            assert t["offset"] % 16 == 0 and t["offset"] + t["bytes"] <= m["arena_size"]


def test_sample_input_and_expected_headers(cnn, tmp_path):
    out = tmp_path / "out"
    export(load_tflite(cnn), out, source=cnn)
    ins = np.load(out / "test_vectors" / "inputs.npy")
    exp = np.load(out / "test_vectors" / "expected.npy")
    text_in = (out / "input.h").read_text()
    text_exp = (out / "expected.h").read_text()
    assert "static const dmx_input_t dmx_sample_input[DMX_INPUT_SIZE]" in text_in
    assert "static const dmx_output_t dmx_expected_output[DMX_OUTPUT_SIZE]" in text_exp
    nums_in = [int(v) for v in re.findall(r"-?\d+", text_in.split("= {")[1])]
    nums_exp = [int(v) for v in re.findall(r"-?\d+", text_exp.split("= {")[1])]
    assert nums_in == ins[0].reshape(-1).tolist() and nums_exp == exp[0].reshape(-1).tolist()


def test_two_exports_are_byte_identical(cnn, tmp_path):
    graph = load_tflite(cnn)
    export(graph, tmp_path / "a", source=cnn, fmt="auto")
    export(load_tflite(cnn), tmp_path / "b", source=cnn, fmt="auto")
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def float_mean_model(tmp_path) -> Path:
    """int8 -> DEQUANTIZE -> float MEAN -> QUANTIZE: float arithmetic in the middle, no C kernel."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 3], scale=0.1, zero_point=0)
    f = m.tensor("f", [1, 4, 4, 3], "float32")
    m.op("DEQUANTIZE", [x], [f])
    ax = m.tensor("axes", [2], "int32", data=[1, 2])
    g = m.tensor("g", [1, 3], "float32")
    m.op("MEAN", [f, ax], [g], keepDims=False)
    y = m.tensor("y", [1, 3], scale=0.1, zero_point=0)
    m.op("QUANTIZE", [g], [y])
    return save(tmp_path, "float_mean", m, [x], [y])


def test_failed_export_leaves_nothing(tmp_path):
    model = float_mean_model(tmp_path)
    out = tmp_path / "out"
    r = run_cli("export", model, "-o", out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "float32 in the middle" in r.stderr and "dequantize" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_failed_export_keeps_the_previous_one(cnn, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export(load_tflite(cnn), out, source=cnn)
    before = files_of(out)
    from dmxgen.backends import c as backend

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backend.np, "save", broken)
    with pytest.raises(RuntimeError):
        export(load_tflite(cnn), out, source=cnn, fmt="dcsr")
    assert files_of(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.tflite", "out"]


def test_refuses_to_overwrite_a_foreign_folder(cnn, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    r = run_cli("export", cnn, "-o", out)
    assert r.returncode == 2 and "not a dmxgen export" in r.stderr and "mine" in r.stderr
    assert (out / "notes.txt").read_text() == "precious" and len(list(out.iterdir())) == 1


def test_overwrites_a_previous_export(cnn, tmp_path):
    out = tmp_path / "out"
    export(load_tflite(cnn), out, source=cnn, fmt="dense")
    (out / "stale.txt").write_text("from an older export")
    export(load_tflite(cnn), out, source=cnn, fmt="dcsr")
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["format"] == "dcsr"


def test_export_errors_are_one_line(tmp_path, cnn):
    r = run_cli("export", tmp_path / "missing.tflite", "-o", tmp_path / "o")
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("verify", tmp_path)
    assert r.returncode == 2 and "no manifest.json" in r.stderr


def test_c_ident_and_namer():
    assert c_ident("model/conv2d/BiasAdd;model/conv2d/Conv2D") == "model_conv2d_biasadd_model_conv2d_conv2d"
    assert c_ident("1st layer") == "n1st_layer" and c_ident("") == "x" and c_ident("__") == "x"
    assert c_ident("int") == "int"  # always used behind a dmx_l_ prefix
    long = c_ident("a" * 100)
    assert len(long) <= 40 and "__" not in long
    namer = Namer()
    names = [namer(n) for n in ("a/b", "a.b", "a b", "A_B", "a__b", "a/b")]
    assert names == ["a_b", "a_b_2", "a_b_3", "a_b_4", "a_b_5", "a_b_6"]
    assert all(IDENT.match(n) and "__" not in n for n in names)
    assert c_comment("x */ y\n??/ \\ é") == "x *_/ y___/ _ _"


def test_weird_names_compile_and_stay_unique(tmp_path):
    """Tensor names with comment terminators, quotes, unicode; op names that collide once cleaned."""
    m = small_cnn(seed=5, sparsity=0.5)
    weird = ["in */ put\\", 'conv "w"\n', "conv/b??/", "çonv/out*/", "dw/w", "dw/b", "dw/out", "pool/out", "s",
             "flatten/out", "fc/w", "fc/b", "fc/out", "softmax ☃"]
    for t, name in zip(m.sg.tensors, weird):
        t.name = name.encode()
    model = m.save(tmp_path / "weird.tflite", [0], [len(m.sg.tensors) - 1])
    graph = load_tflite(model)
    for op, name in zip(graph.ops, ["conv/1", "conv.1", "Conv 1", "1conv", "int", "conv/1"]):
        op.name = name
    manifest = export(graph, tmp_path / "out", source=model)
    idents = [layer["c_name"] for layer in manifest["layers"]]
    assert len(set(idents)) == len(idents) and all(IDENT.match(i) for i in idents), idents
    result = verify_folder(tmp_path / "out", n_inputs=4)
    assert_bit_exact(result)


def test_verify_cli_json_and_stored_vectors(cnn, tmp_path):
    copy = tmp_path / "copy.tflite"
    shutil.copy(cnn, copy)
    out = tmp_path / "out"
    assert run_cli("export", copy, "-o", out, "--vectors", "4").returncode == 0
    r = CliRunner().invoke(main, ["verify", str(out), "--inputs", "4", "--json"], catch_exceptions=False)
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["bit_exact"] and d["inputs"] == 4 and d["expected_from"] == "model"
    assert {"model", "golden", "inputs", "bit_exact", "max_abs_diff", "outputs", "layers"} <= set(d)
    assert len(d["layers"]) == len(json.loads((out / "manifest.json").read_text())["layers"])
    copy.unlink()  # the folder alone: stored vectors
    r = CliRunner().invoke(main, ["verify", str(out), "--inputs", "4", "--json"], catch_exceptions=False)
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["bit_exact"] and d["expected_from"] == "stored" and d["inputs"] == 4
    r = run_cli("verify", out, "--seed", "1")
    assert r.returncode == 2 and "stores only 4 random vectors with seed 0" in r.stderr


def test_verify_catches_a_wrong_constant_and_names_the_layer(cnn, tmp_path):
    out = tmp_path / "out"
    manifest = export(load_tflite(cnn), out, source=cnn, fmt="dense")
    dw = next(layer for layer in manifest["layers"] if layer["op"] == "depthwise_conv2d")
    header = out / "headers" / f"{dw['c_name']}.h"
    text = header.read_text()
    header.write_text(re.sub(r"\.out_offset = (-?\d+)", lambda mo: f".out_offset = {int(mo.group(1)) + 3}", text))
    r = CliRunner().invoke(main, ["verify", str(out), "--json"], catch_exceptions=False)
    d = json.loads(r.output)
    assert r.exit_code == 1 and not d["bit_exact"]
    bad = [layer["name"] for layer in d["layers"] if layer["mismatches"]]
    assert bad[0] == dw["name"]


def test_sanitizers_are_on(cnn, tmp_path):
    """An out-of-bounds read in the generated code must fail verify, not pass silently."""
    out = tmp_path / "out"
    manifest = export(load_tflite(cnn), out, source=cnn, fmt="dense")
    fc = next(layer for layer in manifest["layers"] if layer["op"] == "fully_connected")
    header = out / "headers" / f"{fc['c_name']}.h"
    header.write_text(re.sub(r"\.cols = (\d+)", lambda mo: f".cols = {int(mo.group(1)) + 50}", header.read_text()))
    with pytest.raises(HostBuildError, match="run time") as e:
        verify_folder(out, n_inputs=1)
    assert "AddressSanitizer" in e.value.log


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_compiles_warning_free_for_cortex_m55(cnn, tmp_path):
    out = tmp_path / "out"
    export(load_tflite(cnn), out, source=cnn, fmt="auto")
    for src in ("model.c", "kernels.c"):
        r = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-O2",
                            "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", str(out / src), "-I", str(out), "-o",
                            str(tmp_path / (src + ".o"))], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_bad_options(cnn, tmp_path):
    with pytest.raises(DmxError, match="min-sparsity"):
        export(load_tflite(cnn), tmp_path / "o", source=cnn, min_sparsity=1.5)
    with pytest.raises(DmxError, match="unknown weight format"):
        export(load_tflite(cnn), tmp_path / "o", source=cnn, fmt="rle")
    assert not (tmp_path / "o").exists()


def test_every_graph_op_kind_has_a_c_kernel():
    from dmxgen.backends.c_layers import C_RESOLVERS
    from dmxgen.frontends.tflite import OPERATORS, SUPPORTED
    from dmxgen.graph import OP_KINDS

    # every kind but the float mean, which only the reference runs (docs/support.md)
    assert set(OP_KINDS) - set(C_RESOLVERS) == {"mean_float"}  # includes "lut", made by dmxgen.passes
    # every TFLite operator maps to kinds the C backend prints (mean_float aside, as above)
    assert all(set(OPERATORS[name][1]) - {"mean_float"} <= set(C_RESOLVERS) for name in SUPPORTED)
