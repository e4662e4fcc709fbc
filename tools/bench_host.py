#!/usr/bin/env python3
"""Generated C on the host against TFLite: memory and time, per MLPerf Tiny model.

Usage: python tools/bench_host.py [MODELS_DIR] [--repeat-seconds S]

For every .tflite in MODELS_DIR (default ../shared/models/mlperf_tiny) prints:
- dmxgen's activation arena (DMX_ARENA_SIZE) and the arena plus the caller's
  input/output buffers (TFLM keeps those inside its arena);
- TFLM's arena: `Arena allocation total` from the tflite-micro Python
  interpreter in this run (64-bit host), and the Cortex-M55 CMSIS-NN figure
  measured in ../shared/docs/platform.md;
- weight bytes as dense, CSR, dCSR and auto (from each export's manifest);
- time per inference of the generated C (-O2, no sanitizers, format auto) and
  of LiteRT (default path with XNNPACK, 1 thread; and its reference kernels).
Then checks the target: dmxgen's arena smaller than TFLM's (M55 figure, or the
host figure where there is none) on every model and at least 1.5x smaller in
geometric mean.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmxgen.backends import host  # noqa: E402
from dmxgen.backends.c import load_vectors, manifest_io  # noqa: E402
from dmxgen.targets import export  # noqa: E402
from dmxgen.commands.common import table  # noqa: E402
from dmxgen.frontends.tflite import load_tflite  # noqa: E402

# TFLM + CMSIS-NN arena_used_bytes on the emulated Cortex-M55 (../shared/docs/platform.md).
TFLM_M55 = {"kws_ref_model": 27348, "vww_96_int8": 100772, "pretrainedResnet_quant": 55028, "ad01_int8": 9268}
FORMATS = ("dense", "csr", "dcsr", "auto")
TARGET_GEOMEAN = 1.5


def tflm_arena(model: Path) -> int | None:
    """TFLM's total arena for the model, read from its allocation report (printed by C code on fd 2)."""
    try:
        from tflite_micro import runtime
    except ImportError:
        return None
    it = runtime.Interpreter.from_file(str(model))
    with tempfile.TemporaryFile(mode="w+b") as cap:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(cap.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        cap.seek(0)
        text = cap.read().decode(errors="replace")
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    return int(m.group(1)) if m else None


def litert_seconds(model: Path, x: np.ndarray, reference_kernels: bool, budget: float) -> float:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
    it = Interpreter(model_path=str(model), num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], x.astype(d["dtype"]).reshape(d["shape"]))
    it.invoke()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget or n < 3:
        it.invoke()
        n += 1
    return (time.perf_counter() - start) / n


def c_seconds(folder: Path, manifest: dict, budget: float, work: Path, opt: str) -> float:
    """Build without sanitizers (kernels specialised per layer), check one output, then time it."""
    exe = host.build(folder, work, sanitize=False, hooks=False, opt=opt)
    ins, outs = manifest_io(manifest, "input"), manifest_io(manifest, "output")
    tv = manifest["test_vectors"]
    first, want = load_vectors(folder, tv["inputs"], ins, 1)[0], load_vectors(folder, tv["expected"], outs, 1)[0]
    got = host.run(exe, [first], ins, outs, work, dump=False).outputs[0]
    if not all(np.array_equal(g, w) for g, w in zip(got, want)):
        raise SystemExit(f"{folder}: the -O2 host build differs from the reference")
    once = host.time_inference(exe, first, ins, 3, work)
    repeat = max(3, int(budget / max(once, 1e-6)))
    return host.time_inference(exe, first, ins, repeat, work)


def bench(model: Path, budget: float, work: Path, opt: str) -> dict:
    graph = load_tflite(model)
    manifests = {fmt: export(graph, work / fmt, source=model, fmt=fmt, n_vectors=1) for fmt in FORMATS}
    auto = manifests["auto"]
    io = sum(auto["io_bytes"].values())
    x = np.load(work / "auto" / auto["test_vectors"]["inputs"])[0]
    return {
        "model": model.stem, "arena": auto["arena_size"], "arena_io": auto["arena_size"] + io,
        "tflm_host": tflm_arena(model), "tflm_m55": TFLM_M55.get(model.stem),
        **{f"w_{fmt}": m["weight_bytes"] for fmt, m in manifests.items()},
        "c_us": 1e6 * c_seconds(work / "auto", auto, budget, work, opt),
        "litert_us": 1e6 * litert_seconds(model, x, False, budget),
        "litert_ref_us": 1e6 * litert_seconds(model, x, True, budget),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="?", default=str(ROOT.parent / "shared" / "models" / "mlperf_tiny"))
    ap.add_argument("--repeat-seconds", type=float, default=0.5, help="time budget per timing")
    ap.add_argument("--opt", default="-O2", help="optimisation flag for the timed C build")
    a = ap.parse_args(argv[1:])
    files = sorted(Path(a.models).glob("*.tflite"))
    if not files:
        print(f"no .tflite models in {a.models}; nothing to bench")
        return 0
    if not host.have_compiler():
        print(f"no host compiler ({host.CC}); nothing to bench")
        return 0
    rows = []
    for f in files:
        with tempfile.TemporaryDirectory(prefix="dmx-bench-") as tmp:
            rows.append(bench(f, a.repeat_seconds, Path(tmp), a.opt))
    body = []
    for r in rows:
        tflm = r["tflm_m55"] or r["tflm_host"]
        r["ratio"] = tflm / r["arena"] if tflm and r["arena"] else None
        r["ratio_io"] = tflm / r["arena_io"] if tflm else None
        body.append([r["model"], f"{r['arena']:,}", f"{r['arena_io']:,}",
                     f"{r['tflm_host']:,}" if r["tflm_host"] else "-", f"{r['tflm_m55']:,}" if r["tflm_m55"] else "-",
                     f"{r['ratio']:.2f}x" if r["ratio"] else "-", f"{r['ratio_io']:.2f}x" if r["ratio_io"] else "-",
                     *(f"{r['w_' + fmt]:,}" for fmt in FORMATS),
                     f"{r['c_us']:.0f}", f"{r['litert_us']:.0f}", f"{r['litert_ref_us']:.0f}"])
    print(table(body, ["model", "arena B", "arena+io B", "TFLM host B", "TFLM M55 B", "TFLM/arena",
                       "TFLM/(arena+io)", "dense B", "csr B", "dcsr B", "auto B", "C us", "LiteRT us",
                       "LiteRT ref us"]))
    print("arena: DMX_ARENA_SIZE; +io adds the caller's input and output buffers. TFLM M55: CMSIS-NN build on the "
          "emulated Cortex-M55 (docs/platform.md); ratios use it, or the host TFLM figure where it is missing. "
          f"Times: host, 1 thread; C at {a.opt} without sanitizers, format auto; LiteRT default (XNNPACK) "
          "and its reference kernels (BUILTIN_REF).")
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    ratios_io = [r["ratio_io"] for r in rows if r["ratio_io"]]
    if not ratios:
        print("no TFLM figures to compare with")
        return 0
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    geo_io = math.exp(sum(map(math.log, ratios_io)) / len(ratios_io))
    smaller = all(x > 1 for x in ratios)
    ok = smaller and geo >= TARGET_GEOMEAN
    print(f"arena vs TFLM: geometric mean {geo:.2f}x smaller ({geo_io:.2f}x counting input/output buffers); "
          f"smaller on every model: {'yes' if smaller else 'no'}; target >= {TARGET_GEOMEAN}x: "
          f"{'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
