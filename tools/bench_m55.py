#!/usr/bin/env python3
"""Instructions per inference on the emulated Cortex-M55 (QEMU mps3-an547, -icount):
every MLPerf Tiny model and sparse_{s,m,l}_90, exported dense and dCSR, each run
twice and checked bit-exact against expected.h and repeatable.

    .venv/bin/python tools/bench_m55.py [--models kws_ref_model,sparse_s_90] [--out build/bench_m55] [--json]

Beside the counts: TFLite Micro's on the same emulated core (docs: shared platform
notes, measured with TFLM's own Makefile), the numbers to beat.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
}
FORMATS = ("dense", "dcsr")
# TFLM (commit 90b983c2) on the same QEMU machine, one Invoke(), instructions:
# (CMSIS-NN kernels, reference kernels); from the shared platform notes.
TFLM = {
    "kws_ref_model": (1_815_775, 42_137_752),
    "vww_96_int8": (6_558_267, 96_372_594),
    "pretrainedResnet_quant": (4_911_656, 97_689_321),
    "ad01_int8": (149_978, 1_697_688),
}


def export(model: Path, out: Path, fmt: str) -> None:
    cmd = [sys.executable, "-m", "dmxgen.cli", "export", str(model), "-o", str(out), "--format", fmt]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_m55: export of {model.name} --format {fmt} failed: {r.stderr.strip()}")


def measure(name: str, fmt: str, out_root: Path) -> dict:
    folder = out_root / f"{name}-{fmt}"
    export(SHARED / MODELS[name], folder, fmt)
    runs = [firmware.run(folder, build_dir=folder / "build-cortex-m55") for _ in range(2)]
    sizes = firmware.size(folder, build_dir=folder / "build-cortex-m55")
    return {"model": name, "format": fmt, "passed": all(r.passed for r in runs),
            "repeatable": runs[0].counts() == runs[1].counts() and runs[0].total_ticks == runs[1].total_ticks,
            "instructions": runs[0].total_instructions, "flash": sizes.get("flash"), "ram": sizes.get("ram")}


def setup_problem(tool: str, names: list[str], known) -> str | None:
    """One line saying why the bench cannot run (tools, model names, shared models), or None."""
    if missing := firmware.missing_tools():
        return f"{tool}: needs {', '.join(missing)} (tools/setup.sh)"
    if unknown := [n for n in names if n not in known]:
        return f"{tool}: unknown model(s) {', '.join(unknown)}"
    if not SHARED.is_dir():
        return f"{tool}: {SHARED} not found (../shared/models beside this checkout)"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_m55"), help="where to export and build")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    if problem := setup_problem("bench_m55", names, MODELS):
        print(problem, file=sys.stderr)
        return 2
    out_root = Path(args.out)
    results = [measure(n, f, out_root) for n in names for f in FORMATS]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(names, results))
    return 0 if all(r["passed"] and r["repeatable"] for r in results) else 1


def render(names: list[str], results: list[dict]) -> str:
    by = {(r["model"], r["format"]): r for r in results}
    rows = []
    for n in names:
        d, s = by[(n, "dense")], by[(n, "dcsr")]
        cmsis, ref = TFLM.get(n, (None, None))
        rows.append([n, f"{d['instructions']:,}", f"{s['instructions']:,}",
                     f"{s['instructions'] / d['instructions']:.2f}x", f"{d['flash']:,}", f"{s['flash']:,}",
                     f"{cmsis:,}" if cmsis else "-", f"{ref:,}" if ref else "-",
                     "ok" if d["passed"] and s["passed"] and d["repeatable"] and s["repeatable"] else "FAIL"])
    head = ["model", "dense insns", "dcsr insns", "dcsr/dense", "flash dense", "flash dcsr", "TFLM CMSIS-NN",
            "TFLM ref", "PASS+repeat"]
    note = ("instructions per inference on QEMU mps3-an547 (-icount shift=5, SysTick ticks / 1.024); "
            "flash = code + weights + constants (make size)")
    return table(rows, head) + "\n" + note


if __name__ == "__main__":
    raise SystemExit(main())
