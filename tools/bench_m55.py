#!/usr/bin/env python3
"""dmxgen next to TensorFlow Lite Micro on the emulated Cortex-M55 (QEMU mps3-an547, -icount), one run.

    .venv/bin/python tools/bench_m55.py [--models kws_ref_model,sparse_l_90] [--out build/bench_m55]
        [--tflm-src DIR] [--no-tflm] [--markdown FILE] [--json]

Per model: dmxgen exported dense, dCSR and auto, each run twice (bit-exact against expected.h and
repeatable), and TFLite Micro built from source with CMSIS-NN and with its reference kernels
(tools/bench_tflm.py), all on the same input (the export's sample) in this same run: instructions
per inference, dmxgen / TFLM, flash and RAM. Models whose file is not in ../shared/models are
left out with a note. --markdown writes the tables with the date and the commits measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import bench_tflm  # noqa: E402
from dmxgen import firmware  # noqa: E402
from dmxgen.commands.common import table  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"
MODELS = {
    "kws_ref_model": "mlperf_tiny/kws_ref_model.tflite",
    "vww_96_int8": "mlperf_tiny/vww_96_int8.tflite",
    "pretrainedResnet_quant": "mlperf_tiny/pretrainedResnet_quant.tflite",
    "pretrainedResnet_large_int8": "mlperf_tiny/pretrainedResnet_large_int8.tflite",
    "ad01_int8": "mlperf_tiny/ad01_int8.tflite",
    "sparse_s_90": "dcsr/sparse_s_90.tflite",
    "sparse_m_90": "dcsr/sparse_m_90.tflite",
    "sparse_l_90": "dcsr/sparse_l_90.tflite",
    "mobilenetv2_cifar10_sparse90": "dcsr/mobilenetv2_cifar10_sparse90.tflite",
}
DEFAULT_MODELS = ("kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "pretrainedResnet_large_int8",
                  "ad01_int8", "sparse_l_90", "mobilenetv2_cifar10_sparse90")
FORMATS = ("dense", "dcsr", "auto")
TFLM_KERNELS = ("cmsis-nn", "reference")
DTCM_ARENA_LIMIT = 384 * 1024  # larger arenas go to ISRAM (DTCM is 512 KB and also holds stack and heap)


class BenchFailure(Exception):
    """One model/format could not be measured; the others still are."""


def export(model: Path, out: Path, fmt: str) -> None:
    cmd = [sys.executable, "-m", "dmxgen.cli", "export", str(model), "-o", str(out), "--format", fmt]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchFailure(f"export of {model.name} --format {fmt} failed: {r.stderr.strip()}")


def measure(name: str, fmt: str, out_root: Path) -> dict:
    folder = out_root / f"{name}-{fmt}"
    export(SHARED / MODELS[name], folder, fmt)
    manifest = json.loads((folder / "manifest.json").read_text())
    arena = "isram" if manifest["arena_size"] > DTCM_ARENA_LIMIT else ""
    build = folder / "build-cortex-m55"
    runs = [firmware.run(folder, build_dir=build, arena=arena) for _ in range(2)]
    sizes = firmware.size(folder, build_dir=build, arena=arena)
    return {"model": name, "format": fmt, "passed": all(r.passed for r in runs),
            "repeatable": runs[0].counts() == runs[1].counts() and runs[0].total_ticks == runs[1].total_ticks,
            "instructions": runs[0].total_instructions, "flash": sizes.get("flash"), "ram": sizes.get("ram"),
            "arena": manifest["arena_size"], "folder": str(folder)}


def measure_tflm(name: str, kernels: str, sample_folder: Path, src: Path = bench_tflm.DEFAULT_SRC,
                 build: Path = ROOT / "build" / "tflm") -> dict:
    """TFLM on the export's sample input; `same_output` says whether it gives dmxgen's expected output."""
    inputs = sample_folder / "test_vectors" / "inputs.npy"
    r = bench_tflm.measure(SHARED / MODELS[name], kernels, src=src, build=build, npy=str(inputs),
                           progress=lambda msg: print(f"bench_m55: {msg}", file=sys.stderr))
    expected = np.load(sample_folder / "test_vectors" / "expected.npy", allow_pickle=False)[0]
    ours = np.frombuffer(np.ascontiguousarray(expected).tobytes(), dtype=np.int8).tolist()
    return {key: r[key] for key in ("model", "kernels", "instructions", "arena_used_bytes", "flash", "ram")} | {
        "same_output": r["output"] == ours}


def tflm_unavailable(src: Path = bench_tflm.DEFAULT_SRC) -> str | None:
    """Why TFLM cannot be measured here (no sources, tools or C++ headers), or None."""
    if missing := bench_tflm.missing_tools():
        return f"needs {', '.join(missing)}"
    return bench_tflm.check_sources(src) or bench_tflm.check_cxx_headers()


def setup_problem(tool: str, names: list[str], known) -> str | None:
    """One line saying why the bench cannot run (tools, model names, shared models), or None."""
    if missing := firmware.missing_tools():
        return f"{tool}: needs {', '.join(missing)} (tools/setup.sh)"
    if unknown := [n for n in names if n not in known]:
        return f"{tool}: unknown model(s) {', '.join(unknown)}"
    if not SHARED.is_dir():
        return f"{tool}: {SHARED} not found (../shared/models beside this checkout)"
    return None


def tflm_commits(src: Path) -> dict[str, str]:
    """Commits of the TFLM and CMSIS-NN sources, as their README's table gives them."""
    readme = src / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    found = {}
    for part in ("tflite-micro", "CMSIS-NN"):
        m = re.search(rf"`{re.escape(part)}/`[^\n]*?\b([0-9a-f]{{40}})\b", text)
        found[part] = m.group(1)[:8] if m else "unknown"
    return found


def dmxgen_commit() -> str:
    """HEAD's short hash, "+changes" when what is measured (generator, templates, firmware) differs from it."""
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "dmxgen", "templates", "firmware"],
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated subset of: "
                    + ", ".join(MODELS))
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_m55"), help="where to export and build")
    ap.add_argument("--tflm-src", default=str(bench_tflm.DEFAULT_SRC), help="TFLM + CMSIS-NN sources")
    ap.add_argument("--tflm-build", default=str(ROOT / "build" / "tflm"), help="TFLM build cache")
    ap.add_argument("--no-tflm", action="store_true", help="dmxgen only")
    ap.add_argument("--markdown", default=None, help="also write the tables as markdown here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    if problem := setup_problem("bench_m55", names, MODELS):
        print(problem, file=sys.stderr)
        return 2
    absent = [n for n in names if not (SHARED / MODELS[n]).is_file()]
    names = [n for n in names if n not in absent]
    src = Path(args.tflm_src)
    tflm_problem = "--no-tflm" if args.no_tflm else tflm_unavailable(src)
    out_root = Path(args.out)
    notes = [f"not in {SHARED}: {', '.join(absent)}"] if absent else []
    results = [r for n in names for f in FORMATS if (r := _attempt(measure, notes, n, f, out_root))]
    names = [n for n in names if all(any(r["model"] == n and r["format"] == f for r in results) for f in FORMATS)]
    peers = [] if tflm_problem else [
        p for n in names for k in TFLM_KERNELS
        if (p := _attempt(measure_tflm, notes, n, k, out_root / f"{n}-dense", src, Path(args.tflm_build)))]
    if tflm_problem:
        notes.append(f"TFLM not measured: {tflm_problem}")
    meta = {"date": datetime.date.today().isoformat(), "dmxgen": dmxgen_commit(), **tflm_commits(src)}
    if args.json:
        print(json.dumps({"meta": meta, "dmxgen": results, "tflm": peers, "notes": notes}, indent=2))
    else:
        print(render(names, results, peers, notes))
    if args.markdown:
        Path(args.markdown).write_text(markdown(names, results, peers, meta, notes))
    ok = all(r["passed"] and r["repeatable"] for r in results) and not any("failed" in n for n in notes)
    return 0 if ok else 1


def _attempt(fn, notes: list[str], *args):
    """fn(*args), or None with a note saying why it failed (the bench goes on with the rest)."""
    try:
        return fn(*args)
    except (BenchFailure, bench_tflm.BenchError, firmware.FirmwareError) as e:
        notes.append(f"failed: {e}")
        print(f"bench_m55: {e}", file=sys.stderr)
        return None


def _rows(names: list[str], results: list[dict], peers: list[dict]) -> tuple[list[list[str]], list[list[str]]]:
    """(instructions table, memory table) rows, shared by the text and markdown output."""
    by = {(r["model"], r["format"]): r for r in results}
    peer = {(p["model"], p["kernels"]): p for p in peers}
    insns, memory = [], []
    for n in names:
        d = [by[(n, f)] for f in FORMATS]
        cm, ref = peer.get((n, "cmsis-nn")), peer.get((n, "reference"))
        best = min(d, key=lambda r: r["instructions"])
        ok = all(r["passed"] and r["repeatable"] for r in d)
        insns.append([n] + [f"{r['instructions']:,}" for r in d]
                     + [f"{cm['instructions']:,}" if cm else "-", f"{ref['instructions']:,}" if ref else "-",
                        f"{best['instructions'] / cm['instructions']:.2f} ({best['format']})" if cm else "-",
                        ("PASS" if ok else "FAIL") + ("" if not cm else ", same" if cm["same_output"] else
                                                      ", TFLM differs")])
        auto = by[(n, "auto")]
        memory.append([n] + [f"{r['flash']:,}" for r in d] + [f"{cm['flash']:,}" if cm else "-",
                                                             f"{auto['ram']:,}", f"{cm['ram']:,}" if cm else "-",
                                                             f"{auto['arena']:,}",
                                                             f"{cm['arena_used_bytes']:,}" if cm else "-"])
    return insns, memory


INSN_HEAD = ["model", "dmxgen dense", "dmxgen dCSR", "dmxgen auto", "TFLM CMSIS-NN", "TFLM reference",
             "best dmxgen / CMSIS-NN", "bit-exact, output vs TFLM"]
MEM_HEAD = ["model", "flash dense", "flash dCSR", "flash auto", "flash TFLM", "RAM auto", "RAM TFLM",
            "arena auto", "TFLM arena_used_bytes"]
NOTE = ("instructions per inference on QEMU 7.2 mps3-an547 (Cortex-M55, -icount shift=5: SysTick ticks / 1.024; "
        "not cycles); TFLM: one Invoke() after a warm-up, release build, -O2; flash = code + weights/model + "
        "constants; RAM = .data + .bss + arena (TFLM: its arena_used_bytes); bytes")


def render(names: list[str], results: list[dict], peers: list[dict], notes: list[str]) -> str:
    insns, memory = _rows(names, results, peers)
    return "\n\n".join([table(insns, INSN_HEAD), table(memory, MEM_HEAD), NOTE] + notes)


def markdown(names: list[str], results: list[dict], peers: list[dict], meta: dict, notes: list[str]) -> str:
    insns, memory = _rows(names, results, peers)

    def md(rows: list[list[str]], head: list[str]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])

    header = (f"Measured {meta['date']} by `tools/bench_m55.py` (dmxgen {meta['dmxgen']}, TFLM "
              f"{meta['tflite-micro']}, CMSIS-NN {meta['CMSIS-NN']}).")
    return "\n\n".join([header, md(insns, INSN_HEAD), md(memory, MEM_HEAD), NOTE + "."] + notes) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
