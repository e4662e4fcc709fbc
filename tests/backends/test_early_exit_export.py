"""`dmxgen export` of an early-exit model (issue 13): model.c is the baseline, model_ee.c runs the
stages and stops at the first head the policy accepts. On all 360 digits test images the integer
reference, the fake-quantized PyTorch EarlyExit and the host C (ASan/UBSan) take the same exit and
give the same bytes."""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.backends.conftest import needs_gcc

torch = pytest.importorskip("torch")

import dmxgen  # noqa: E402
from dmxgen.backends import host  # noqa: E402
from dmxgen.errors import DmxError  # noqa: E402
from dmxgen.frontends.torch_io import ENTRY  # noqa: E402
from dmxgen.graph import exit_policy as ep  # noqa: E402
from dmxgen.graph.early_exit import baseline, stored_policy  # noqa: E402
from dmxgen.pipeline import load_model  # noqa: E402
from dmxgen.reference.early_exit import run_early_exit  # noqa: E402
from dmxgen.targets import export, verify_folder  # noqa: E402

pytestmark = needs_gcc


def trained_digits_ee():
    """(EarlyExit, test images): models/lenet_ee.py trained briefly, calibrated."""
    from models import lenet, lenet_ee

    torch.set_num_threads(1)
    s = lenet_ee.split(lenet.digits_data(0), seed=0)
    return lenet_ee.train_early_exit(s, epochs=5, head_epochs=4, seed=0), s.train.x_test


def spread_policy(ee, x, kind: str) -> ep.ExitPolicy:
    """Thresholds at which every exit, and the final classifier, take a fair share of x."""
    conf = [ep.confidences(kind, c, s) for c, s in zip(ee.logit_codes(x)[:-1], ee.exit_scales())]
    return ep.ExitPolicy(kind, tuple(int(np.quantile(c, q)) for c, q in zip(conf, (0.6, 0.3))))


def save_with(ee, x, kind: str, path: Path) -> Path:
    ee.policy = spread_policy(ee, x, kind)
    return dmxgen.save(ee, path, x[:1])


def saved_digits_ee(d: Path, kinds=("margin", "softmax")) -> tuple:
    """(EarlyExit with the margin policy, test images, their int8 codes, d/x_test.npy of the codes,
    {kind: d/lenet_ee_<kind>.pt2 saved with spread_policy})."""
    ee, x = trained_digits_ee()
    codes = np.asarray(ee.quantize_input(x)).astype(np.int8)
    np.save(d / "x_test.npy", codes)
    files = {kind: save_with(ee, x, kind, d / f"lenet_ee_{kind}.pt2") for kind in kinds}
    ee.policy = spread_policy(ee, x, "margin")
    return ee, x, codes, d / "x_test.npy", files


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits_ee")
    return (*saved_digits_ee(d), d)


@pytest.fixture(scope="module")
def exported(digits):
    """The margin model exported with every test image as a vector, and its verify report."""
    _, _, _, images, files, d = digits
    out = d / "out_margin"
    manifest = export(files["margin"], out, input_files=(images,), n_vectors=0)
    return out, manifest, verify_folder(out, n_inputs=0, input_files=(images,))


def test_saved_model_keeps_entries_and_policy(digits):
    ee, _, _, _, files, _ = digits
    graph = load_model(files["margin"])
    assert list(graph.entries) == ["exit0", "exit1", "final"]
    assert stored_policy(graph) == spread_policy(ee, digits[1], "margin")
    assert [t for t, _, _ in graph.early_exit.values()] == graph.outputs[:2]


@pytest.mark.parametrize("kind", ["margin", "softmax"])
def test_all_360_images_take_the_same_exit_everywhere(digits, tmp_path, kind):
    ee, x, codes, images, files, d = digits
    out = tmp_path / "out"
    export(files[kind], out, input_files=(images,), n_vectors=0)
    m = host.read_manifest(out)
    assert m["early_exit"]["policy"] == kind
    inputs = [[codes[i]] for i in range(len(codes))]
    c_exits, c_out = host.run_early_exit(out, inputs, m)  # host C, ASan/UBSan
    ee.policy = spread_policy(ee, x, kind)
    torch_exits, torch_out = ee.decide(x)  # the fake-quantized PyTorch model
    graph = load_model(files[kind])
    for i in range(len(x)):
        k, logits = run_early_exit(graph, ee.policy, codes[i])  # the integer reference
        assert c_exits[i] == torch_exits[i] == k, i
        assert np.array_equal(c_out[i], logits.reshape(-1).astype(np.int8)), i
        assert np.array_equal(c_out[i].astype(np.int64), torch_out[i]), i
    assert set(c_exits.tolist()) == {0, 1, 2}


def test_verify_runs_the_early_exit_model_on_every_vector(exported):
    _, _, report = exported
    ee = report["early_exit"]
    assert report["bit_exact"] and report["expected_from"] == "model" and report["inputs"] == 360
    assert ee["bit_exact"] and ee["inputs"] == 360 and sum(ee["exits"]) == 360 and min(ee["exits"]) > 0


def test_model_c_is_the_backbone_exported_alone(digits, exported, tmp_path):
    _, _, _, _, files, _ = digits
    out, manifest, _ = exported
    alone = tmp_path / "alone"
    export(baseline(load_model(files["margin"])), alone, source=files["margin"], n_vectors=1)
    for rel in ["model.c", "model.h", "headers/headers.h"] + [f"headers/{p.name}" for p in
                                                              (alone / "headers").glob("*.h")]:
        assert (out / rel).read_bytes() == (alone / rel).read_bytes(), rel
    heads = sorted(p.name for p in (out / "headers").glob("*_ee.h"))
    assert heads == ["headers_ee.h", "heads_exit0_0_ee.h", "heads_exit0_2_ee.h", "heads_exit1_1_ee.h"]
    included = re.findall(r'#include "(\S+)"', (out / "headers/headers_ee.h").read_text())
    assert set(included) == {p.name for p in (alone / "headers").glob("*.h") if p.name != "headers.h"} | set(heads[1:])
    assert manifest["early_exit"]["head_weight_bytes"] == 32 * 10 + 128 * 10  # the heads' int8 FC weights
    assert "dmx_exit_margin_s8" in (out / "kernels.h").read_text()
    assert "dmx_exit_margin_s8" not in (alone / "kernels.h").read_text()


def test_expected_h_and_vectors_carry_the_reference_exit(digits, exported):
    ee, _, codes, _, files, _ = digits
    out, _, _ = exported
    graph = load_model(files["margin"])
    k, logits = run_early_exit(graph, stored_policy(graph), codes[0])  # input.h is the first image
    text = (out / "expected.h").read_text()
    assert int(re.search(r"#define DMX_EXPECTED_EXIT (\d+)", text).group(1)) == k
    block = re.search(r"dmx_expected_ee_output\[DMX_OUTPUT_SIZE\] = \{([^}]*)\}", text).group(1)
    assert [int(v) for v in block.replace(",", " ").split()] == logits.reshape(-1).tolist()
    with np.load(out / "test_vectors/expected_ee.npz") as z:
        ref = [run_early_exit(graph, stored_policy(graph), c) for c in codes[:40]]
        assert z["exit"][:40].tolist() == [r[0] for r in ref]
        assert np.array_equal(z["output"][:40], np.stack([r[1].reshape(-1) for r in ref]).astype(np.int8))


def test_stored_vectors_check_the_exit_and_a_wrong_one_fails(digits, tmp_path):
    _, _, _, _, files, _ = digits
    model = tmp_path / "model.pt2"
    model.write_bytes(files["margin"].read_bytes())
    out = tmp_path / "out"
    export(model, out, n_vectors=8)
    model.unlink()  # verify falls back on the stored vectors
    report = verify_folder(out, n_inputs=8)
    assert report["expected_from"] == "stored" and report["early_exit"]["bit_exact"]
    path = out / "test_vectors/expected_ee.npz"
    with np.load(path) as z:
        exits, outputs = z["exit"].copy(), z["output"]
    exits[3] = (exits[3] + 1) % 3
    np.savez(path, exit=exits, output=outputs)
    report = verify_folder(out, n_inputs=8)
    assert not report["bit_exact"] and report["early_exit"]["exit_mismatches"] == 1
    assert report["early_exit"]["first_mismatch"] == 3
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "verify", str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "MISMATCH (1 exits, 0 outputs differ; first at input 3)" in r.stdout, r.stdout


def _with_policy(src: Path, dst: Path, edit) -> Path:
    """A copy of a saved model whose stored graph JSON has its early_exit block edited."""
    import json

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith(ENTRY):
                doc = json.loads(data)
                edit(doc["early_exit"])
                data = json.dumps(doc).encode()
            zout.writestr(item, data)
    return dst


@pytest.mark.parametrize("edit, named", [
    (lambda p: p["exit0"].__setitem__(0, "no_such_tensor"), "'no_such_tensor', which does not exist"),
    (lambda p: p.__setitem__("exit7", p.pop("exit1")), "entry 'exit7', which is not an exit entry"),
    (lambda p: p["exit1"].__setitem__(1, "entropy"), "policy 'entropy' is not one of margin, softmax"),
    (lambda p: p.pop("exit1"), "no threshold for exit entry 'exit1'"),
])
def test_a_policy_that_cannot_be_exported_is_refused_in_one_line(digits, tmp_path, edit, named):
    bad = _with_policy(digits[4]["margin"], tmp_path / "bad.pt2", edit)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "export", str(bad), "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and named in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


def test_refusal_as_a_library_call(digits, tmp_path):
    graph = load_model(digits[4]["margin"])
    graph.early_exit["exit0"] = (graph.outputs[1], "margin", 3)  # exit1's logits
    with pytest.raises(DmxError, match="not that entry's one output"):
        export(graph, tmp_path / "out")


@pytest.mark.parametrize("kind", ["margin", "softmax"])
def test_hls_csim_takes_the_reference_exit_on_every_image(digits, tmp_path, kind):
    from dmxgen.backends.hls_csim import run_csim

    _, _, codes, images, files, _ = digits
    out = tmp_path / "out"
    export(files[kind], out, targets=("c", "hls"), input_files=(images,), n_vectors=0)
    assert "dmx_top_ee" in (out / "hls/top.h").read_text()
    r = run_csim(out, opt="-O1", sanitize=True)
    assert r.returncode == 0 and "PASS: 360 vectors" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    graph = load_model(files[kind])
    taken = [run_early_exit(graph, stored_policy(graph), c)[0] for c in codes]
    assert f"EXITS: {taken.count(0)} {taken.count(1)} {taken.count(2)}" in r.stdout
    # a wrong expected exit fails csim, naming the vector
    dat = out / "hls/tb_data/expected_ee.dat"
    lines = dat.read_text().splitlines()
    first = lines[0].split()
    lines[0] = " ".join([str((int(first[0]) + 1) % 3), *first[1:]])
    dat.write_text("\n".join(lines) + "\n")
    r = run_csim(out, opt="-O1")
    assert r.returncode != 0 and "MISMATCH early exit vector 0" in r.stdout, r.stdout[-2000:]
    assert "FAIL: 1 of 360 vectors" in r.stdout
