#!/usr/bin/env python3
"""Wall time of `dmxgen export` and of its reference runs, BLAS at one thread vs unlimited.

Usage: python tools/bench_export.py [MODELS_DIR] [--runs N]

The export spends much of its time in the numpy reference (the test vectors), whose small
matmuls slow down many times under OpenBLAS's default threads on a busy machine; dmxgen
holds BLAS to one thread around reference runs (dmxgen/reference, threadpoolctl). Per model
this prints, as a markdown table, the median of N runs (default 3) of: `dmxgen export` in a
fresh process, and the reference alone (the export's 8 test vectors through the lowered graph
and, when lowering changed it, the loaded one), once with the limit (as dmxgen runs) and once
with it switched off (as before it). Target: mobilenetv2_cifar10_dense100 exports in < 5 s
with the limit, on a loaded 2-core machine. Models are read from MODELS_DIR (default
../shared/models); without them the benchmark says so and exits 0.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("dcsr/mobilenetv2_cifar10_dense100.tflite", "mlperf_tiny/kws_ref_model.tflite",
          "mlperf_tiny/vww_96_int8.tflite")
TARGET_MODEL, TARGET_S = MODELS[0], 5.0
VECTORS = 8  # dmxgen export's default --vectors

# `dmxgen export` with the reference's BLAS limit on or switched off (single_threaded_blas a no-op)
_EXPORT = ("import contextlib, sys\n"
           "import dmxgen.reference as r\n"
           "if sys.argv.pop(1) == 'off':\n"
           "    r.single_threaded_blas = contextlib.nullcontext\n"
           "from dmxgen.cli import main\n"
           "sys.argv[0] = 'dmxgen'\n"
           "main()\n")


def time_export(model: Path, limit: bool, out: Path) -> float:
    """Seconds of wall time of one `dmxgen export MODEL -o OUT` in a new process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _EXPORT, "on" if limit else "off", "export", str(model), "-o", str(out)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def time_reference(model: Path, limit: bool) -> float:
    """Seconds the export's test vectors take in the reference (as dmxgen/vectors.py runs them)."""
    from dmxgen import reference, vectors
    from dmxgen.passes import lower
    from dmxgen.pipeline import load_model

    graph = load_model(model)
    lowered = lower(graph, [])
    sets = vectors.random_inputs(graph, VECTORS, 0)
    same = [id(o) for o in lowered.ops] == [id(o) for o in graph.ops]
    saved = reference.single_threaded_blas
    if not limit:
        reference.single_threaded_blas = contextlib.nullcontext
    try:
        t0 = time.perf_counter()
        list(reference.run_each(lowered, sets, keep=True))
        if not same:
            list(reference.run_each(graph, sets))
        return time.perf_counter() - t0
    finally:
        reference.single_threaded_blas = saved


def main(argv: list[str]) -> int:
    args = argv[1:]
    runs = 3
    if "--runs" in args:
        i = args.index("--runs")
        runs = int(args[i + 1])
        del args[i:i + 2]
    models_dir = Path(args[0]) if args else ROOT.parent / "shared" / "models"
    present = [(name, models_dir / name) for name in MODELS if (models_dir / name).is_file()]
    if not present:
        print(f"none of {', '.join(MODELS)} under {models_dir}; nothing to bench")
        return 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"median of {runs} runs; {os.cpu_count()} CPUs, load average {load:.2f} at start\n")
    print("| model | BLAS threads | export s | reference s |")
    print("| --- | --- | ---: | ---: |")
    target = None
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        for name, path in present:
            times = {(limit, what): [] for limit in (True, False) for what in ("export", "reference")}
            for _ in range(runs):  # interleaved, so that a change of the machine's load hits both settings
                for limit in (True, False):
                    times[limit, "export"].append(time_export(path, limit, Path(tmp) / "out"))
                    times[limit, "reference"].append(time_reference(path, limit))
            for limit in (True, False):
                export_s, ref_s = (statistics.median(times[limit, what]) for what in ("export", "reference"))
                print(f"| {Path(name).stem} | {'1 (dmxgen)' if limit else 'unlimited'} | {export_s:.2f} | {ref_s:.2f} |")
                if name == TARGET_MODEL and limit:
                    target = export_s
    if target is None:
        print(f"\n{TARGET_MODEL} not found: no target to check")
        return 0
    ok = target < TARGET_S
    print(f"\ntarget: {Path(TARGET_MODEL).stem} exports in < {TARGET_S:.0f} s -> {target:.2f} s, "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
