"""`dmxgen report`: its data against the manifest, MACs against hand counts, and the page as a
person sees it (headless Chromium: screenshot, DOM, console)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmxgen import firmware
from dmxgen.cli import main
from dmxgen.report import layer_macs, record_step, save_bench
from dmxgen.report.compare import align

from .conftest import shared_or_skip

PLOT_IDS = ("plot-bytes", "plot-arena", "plot-instructions", "plot-kinds", "plot-tflm")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def small_export(small_model, tmp_path) -> Path:
    out = tmp_path / "small"
    r = cli("export", str(small_model), "-o", str(out), "--format", "auto", "--vectors", "2")
    assert r.exit_code == 0, r.output
    return out


def report_json(out: Path, *extra: str) -> dict:
    r = cli("report", str(out), "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


# ---- MACs ----------------------------------------------------------------------------------------

def test_macs_by_hand():
    # conv: every output element takes kh*kw*in MACs: 5*5*8 outputs x 3*3*4
    assert layer_macs({"op": "conv2d", "weight_shape": [8, 3, 3, 4], "output": [1, 5, 5, 8]}) == 7200
    # depthwise: kh*kw per output element: 4*4*16 x 9
    assert layer_macs({"op": "depthwise_conv2d", "weight_shape": [1, 3, 3, 16], "output": [1, 4, 4, 16]}) == 2304
    # fully connected, batch 2: 2*10 outputs x 32 inputs
    assert layer_macs({"op": "fully_connected", "weight_shape": [10, 32], "output": [2, 10]}) == 640
    assert layer_macs({"op": "add", "output": [1, 4, 4, 16]}) == 0
    assert layer_macs({"op": "conv2d", "output": [1, 5, 5, 8]}) == 0  # no weights recorded


def test_macs_of_an_export_match_hand_counts(small_export):
    """small_cnn: conv 3x3x3 -> 8 channels on 6x6, depthwise 3x3 on 6x6x8, FC 72 -> 10."""
    by_op = {r["op"]: r["macs"] for r in report_json(small_export)["layers"]}
    assert by_op["conv2d"] == 6 * 6 * 8 * 3 * 3 * 3
    assert by_op["depthwise_conv2d"] == 6 * 6 * 8 * 3 * 3
    assert by_op["fully_connected"] == 10 * 72
    assert by_op["softmax"] == 0 and by_op["avg_pool2d"] == 0


def test_kws_macs(tmp_path):
    """DS-CNN KWS: the well-known 2.66 M MACs, from its five convs, four depthwise and the FC."""
    model = shared_or_skip("mlperf_tiny/kws_ref_model.tflite")
    out = tmp_path / "kws"
    assert cli("export", str(model), "-o", str(out), "--vectors", "1").exit_code == 0
    data = report_json(out)
    # conv 10x4 on 1 channel -> 64 at 25x5; 4 x (depthwise 3x3 + pointwise 64->64) at 25x5; FC 64 -> 12
    hand = 25 * 5 * 64 * 10 * 4 + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12
    assert data["summary"]["macs"] == hand == 2_656_768


# ---- data against the manifest -------------------------------------------------------------------

def test_json_agrees_with_manifest(small_export):
    manifest = json.loads((small_export / "manifest.json").read_text())
    data = report_json(small_export)
    layers = data["layers"]
    assert [r["name"] for r in layers] == [m["name"] for m in manifest["layers"]]
    assert sum(r["weight_bytes"] for r in layers) == manifest["weight_bytes"]
    assert sum(r["dense_weight_bytes"] for r in layers) == manifest["dense_weight_bytes"]
    assert data["summary"]["weight_bytes"] < data["summary"]["dense_weight_bytes"]  # dCSR paid off somewhere
    assert {r["format"] for r in layers if r["weight_bytes"]} == {"dense", "dcsr"}
    arena = {t["first_op"]: t for t in manifest["tensors"]
             if t["storage"] == "arena" and not t["name"].startswith("scratch:")}
    for r in layers:
        if r["index"] in arena:
            assert (r["arena_offset"], r["arena_bytes"]) == (arena[r["index"]]["offset"], arena[r["index"]]["bytes"])
            assert r["arena_offset"] + r["arena_bytes"] <= manifest["arena_size"]
    assert layers[-1]["storage"] == "output"
    assert all(r["instructions"] is None for r in layers)
    assert [s["status"] for s in data["ladder"]] == ["not run"] * 4


def test_bench_results_and_ladder_records(small_export):
    """What `dmxgen bench` stores (save_bench) reaches the table; a failed rung shows as MISMATCH."""
    manifest = json.loads((small_export / "manifest.json").read_text())
    layers = [{"index": m["index"], "name": m["name"], "instructions": 1000 + 7 * m["index"]}
              for m in manifest["layers"]]
    bench = {"passed": True, "repeatable": True, "verdict": "PASS", "total_instructions": 99_999, "layers": layers}
    save_bench(small_export, bench, size={"flash": 12_345, "ram": 678})
    record_step(small_export, "host_c", False, "output 3 differs")
    data = report_json(small_export)
    for r, b in zip(data["layers"], layers):
        assert r["instructions"] == b["instructions"]
        assert r["instructions_per_mac"] == (b["instructions"] / r["macs"] if r["macs"] else None)
    assert data["summary"]["firmware_size"] == {"flash": 12_345, "ram": 678}
    assert data["summary"]["instructions_per_mac"] == 99_999 / data["summary"]["macs"]
    status = {s["step"]: s["status"] for s in data["ladder"]}
    assert status == {"reference_vs_tflite": "not run", "host_c": "MISMATCH", "m55": "bit-exact",
                      "hls_csim": "not run"}
    save_bench(small_export, dict(bench, passed=False, verdict="FAIL 1 of 10 outputs differ"))
    assert {s["step"]: s["status"] for s in report_json(small_export)["ladder"]}["m55"] == "MISMATCH"


def test_page_is_deterministic_and_default_path(small_export, tmp_path):
    r = cli("report", str(small_export))
    assert r.exit_code == 0 and (small_export / "report.html").is_file()
    assert cli("report", str(small_export), "-o", str(tmp_path / "again.html")).exit_code == 0
    assert (small_export / "report.html").read_bytes() == (tmp_path / "again.html").read_bytes()


def test_unwritable_folder_costs_a_warning_not_the_bench(tmp_path, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    assert save_bench(blocked, {"passed": True, "layers": []}) is None
    assert "warning: bench results not stored" in capsys.readouterr().err
    assert blocked.read_text() == ""


def test_tflm_alignment_pairs_matching_kinds_only():
    ours = [{"index": i, "op": op} for i, op in
            enumerate(["conv2d", "depthwise_conv2d", "avg_pool2d", "reshape", "fully_connected", "softmax"])]
    theirs = [{"index": i, "op": op, "instructions": 10 * i} for i, op in
              enumerate(["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"])]
    pairs = align(ours, theirs)
    assert {i: o["op"] for i, o in pairs.items()} == {0: "CONV_2D", 1: "DEPTHWISE_CONV_2D", 2: "AVERAGE_POOL_2D",
                                                      4: "FULLY_CONNECTED", 5: "SOFTMAX"}


def test_errors_are_one_line(tmp_path, small_export):
    runner = CliRunner()
    r = runner.invoke(main, ["report", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no such directory" in r.output and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(main, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no manifest.json" in r.output
    r = runner.invoke(main, ["report", str(small_export), "--tflm", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "missing.json: no such file" in r.output
    assert not (small_export / "report.html").exists()  # nothing half-written
    (small_export / "bench_m55.json").write_text("{not json")
    r = runner.invoke(main, ["report", str(small_export)])
    assert r.exit_code == 2 and "bench_m55.json" in r.output and len(r.output.strip().splitlines()) == 1


# ---- the page in a browser -----------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1", "--enable-logging=stderr", "--v=0"]
# Appended to a copy of the page: writes where every element of interest landed into the DOM.
PROBE = """<script>(function(){var r={height:document.documentElement.scrollHeight};
[%s].forEach(function(id){var e=document.getElementById(id);if(e){var b=e.getBoundingClientRect();
r[id]=[b.left,b.top+window.scrollY,b.width,b.height];}});var p=document.createElement('pre');p.id='probe';
p.textContent=JSON.stringify(r);document.body.appendChild(p);})();</script>"""


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return re.findall(r":CONSOLE[^\]]*\] (.*)", stderr)


def colored_fraction(pixels, box) -> float:
    """Share of clearly coloured (not white, grey or black) pixels in box = (x, y, w, h)."""
    x, y, w, h = (int(round(v)) for v in box)
    region = pixels[y:y + h, x:x + w, :3].astype(float)
    if region.size == 0:
        return 0.0
    spread = region.max(axis=2) - region.min(axis=2)
    return float((spread > 0.15).mean())


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (tools/setup.sh installs it)")
def test_page_in_headless_chromium(small_export, tmp_path):
    import matplotlib.image as mpimg

    manifest = json.loads((small_export / "manifest.json").read_text())
    if not firmware.missing_tools():
        r = cli("bench", str(small_export), "--runs", "1")
        assert r.exit_code == 0, r.output
        assert (small_export / "bench_m55.json").is_file()
    else:  # what `dmxgen bench` would store, so the instruction plots are drawn
        save_bench(small_export, {"passed": True, "verdict": "PASS", "total_instructions": 5000, "layers": [
            {"index": m["index"], "instructions": 100 + 50 * m["index"]} for m in manifest["layers"]]})
    tflm = [{"model": "small", "kernels": "cmsis-nn", "instructions": 9000, "arena_used_bytes": 2000,
             "flash": 90000, "ram": 3000, "ops": [{"index": i, "op": op, "instructions": 1000 + i} for i, op in
                                                   enumerate(["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                                                              "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"])]}]
    (tmp_path / "tflm.json").write_text(json.dumps(tflm))
    page = tmp_path / "report.html"
    r = cli("report", str(small_export), "-o", str(page), "--tflm", str(tmp_path / "tflm.json"))
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "the page must fetch nothing"
    assert "<script" not in html and "<link" not in html

    # DOM: the ids, and where each lands (probe appended to a copy of the page)
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE % ",".join(f"'{i}'" for i in
                                   ("summary", "layers-table", "ladder-table") + PLOT_IDS) + "</body>"))
    dom = chromium(probed, tmp_path / "profile1", "--window-size=1280,1000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    layout = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout).group(1))
    for element in ("summary", "layers-table", "ladder-table") + PLOT_IDS:
        assert element in layout, f"no #{element} in the page"
    assert dom.stdout.count("<svg") >= len(PLOT_IDS)
    assert len(re.findall(r"<tr>", dom.stdout.split('id="layers-table"')[1].split("</table>")[0])) \
        == 1 + len(manifest["layers"])

    # Screenshot of the real page (no probe), tall enough for everything; no console messages at all
    shot = tmp_path / "shot.png"
    height = int(layout["height"]) + 40
    run = chromium(page, tmp_path / "profile2", f"--window-size=1280,{height}", f"--screenshot={shot}")
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert console_messages(run.stderr) == []
    pixels = mpimg.imread(shot)
    assert pixels.shape[0] >= height - 1
    for plot in PLOT_IDS:
        assert colored_fraction(pixels, layout[plot]) > 0.01, f"#{plot} looks blank"
    assert colored_fraction(pixels, layout["summary"]) < 0.01  # text only: the check tells plots from text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (tools/setup.sh installs it)")
def test_console_check_sees_errors(tmp_path):
    """The console check above can fail: a page with a script error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><p>x</p><script>console.error('probe-error'); missingFunction();</script>"
                    "</body></html>")
    run = chromium(page, tmp_path / "profile", "--dump-dom")
    messages = console_messages(run.stderr)
    assert any("probe-error" in m for m in messages) and any("missingFunction" in m for m in messages)


def test_tflm_alignment_knows_the_split_kinds():
    """QUANTIZE, SOFTMAX and MEAN each became two dmxgen kinds; all of them line up with the TFLite operator."""
    ours = [{"index": i, "op": op} for i, op in enumerate(["requantize", "softmax_gemmlowp", "mean_float"])]
    theirs = [{"index": i, "op": op, "instructions": 1} for i, op in enumerate(["QUANTIZE", "SOFTMAX", "MEAN"])]
    assert {i: o["op"] for i, o in align(ours, theirs).items()} == {0: "QUANTIZE", 1: "SOFTMAX", 2: "MEAN"}
