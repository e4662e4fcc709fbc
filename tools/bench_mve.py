#!/usr/bin/env python3
"""Helium (MVE) kernels against the scalar C and TFLite Micro, instructions on QEMU's Cortex-M55.

    .venv/bin/python tools/bench_mve.py [--models kws_ref_model,ad01_int8] [--no-sparse] [--out build/bench_mve] [--json]

(a) sparse_l_90's pruned layers (the FULLY_CONNECTED and the 276x276 1x1 convolutions):
    dCSR with MVE vs dense with MVE, per layer, and dense scalar (-DDMX_NO_MVE) beside them;
    "auto MVE" is `--format dcsr_gather` (auto takes it under a byte budget), the FC in dCSR's gather-offset variant
    (docs/formats-dcsr-gather.md), with the whole model's totals under the table.
(b) the MLPerf Tiny models, dense weights: dmxgen scalar, dmxgen MVE and TFLite Micro with
    CMSIS-NN on the same emulator (measured in the same run, tools/bench_tflm.py); the target is fewer instructions than
    TFLM + CMSIS-NN on every model.
(c) the same models per op kind: the scalar kernels against the MVE ones.
(d) per model and weighted op kind (conv2d, depthwise_conv2d, fully_connected): MVE instructions per
    multiply-accumulate and the ratio to a floor computed from the graph, per layer
    MACs / 16 (one VMLADAVA per 16 int8 products) + (weight bytes + input bytes) / 16 (every weight
    and input byte loaded once, 16 to a vector) + 3 per output (requantization).
Every build must PASS (bit-exact against expected.h); the exit status is 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench_m55 import MODELS, ROOT, SHARED, export, measure_tflm, setup_problem, tflm_unavailable

from dmxgen import firmware
from dmxgen.commands.common import table

MLPERF = ("kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8")
SPARSE = "sparse_l_90"
SCALAR = "-DDMX_NO_MVE"
_exported: set[Path] = set()


def run(name: str, fmt: str, mve: bool, out_root: Path) -> tuple[dict, firmware.FirmwareRun]:
    """Export (once per model and format) and run one build; returns (manifest, run)."""
    folder = out_root / f"{name}-{fmt}"
    if folder not in _exported:  # fresh on every invocation: the kernels are in the export
        export(SHARED / MODELS[name], folder, fmt)
        _exported.add(folder)
    build = folder / ("build-mve" if mve else "build-scalar")
    result = firmware.run(folder, build_dir=build, extra_cflags="" if mve else SCALAR)
    return json.loads((folder / "manifest.json").read_text()), result


def sparse_rows(out_root: Path) -> tuple[list[dict], bool]:
    """Per pruned layer of sparse_l_90: dense MVE, dCSR MVE, dense scalar, dCSR scalar, auto MVE;
    and a last row "model" with the whole inference's totals."""
    manifest, dcsr_mve = run(SPARSE, "dcsr", True, out_root)
    _, dcsr_scalar = run(SPARSE, "dcsr", False, out_root)
    _, dense_mve = run(SPARSE, "dense", True, out_root)
    _, dense_scalar = run(SPARSE, "dense", False, out_root)
    auto_manifest, auto_mve = run(SPARSE, "dcsr_gather", True, out_root)  # every pruned layer in the variant
    runs = (dense_mve, dcsr_mve, dense_scalar, dcsr_scalar, auto_mve)
    counts = [{lc.index: lc.instructions for lc in r.layers} for r in runs]
    auto_fmt = {layer["index"]: layer.get("format") for layer in auto_manifest["layers"]}
    rows = []
    for layer in manifest["layers"]:
        if layer.get("format") != "dcsr":
            continue
        i = layer["index"]
        rows.append({"layer": layer["name"], "op": layer["op"], "matrix": layer["matrix"],
                     "sparsity": layer["sparsity"], "dense_mve": counts[0][i], "dcsr_mve": counts[1][i],
                     "dense_scalar": counts[2][i], "dcsr_scalar": counts[3][i], "auto_mve": counts[4][i],
                     "auto_format": auto_fmt[i]})
    rows.append({"layer": "model", "dense_mve": dense_mve.total_instructions,
                 "dcsr_mve": dcsr_mve.total_instructions, "dense_scalar": dense_scalar.total_instructions,
                 "dcsr_scalar": dcsr_scalar.total_instructions, "auto_mve": auto_mve.total_instructions})
    return rows, all(r.passed for r in runs)


def model_rows(names: list[str], out_root: Path) -> tuple[list[dict], bool]:
    """Per model: totals, and per op kind the scalar and MVE instructions (for table (c))."""
    rows, ok = [], True
    for name in names:
        manifest, mve = run(name, "dense", True, out_root)
        _, scalar = run(name, "dense", False, out_root)
        ok = ok and mve.passed and scalar.passed
        ops: dict[str, list[int]] = {}
        kinds = {layer["index"]: layer["op"] for layer in manifest["layers"]}
        for i, r in enumerate((scalar, mve)):
            for lc in r.layers:
                ops.setdefault(kinds[lc.index], [0, 0])[i] += lc.instructions
        rows.append({"model": name, "scalar": scalar.total_instructions, "mve": mve.total_instructions,
                     "tflm_cmsis_nn": measure_tflm(name, "cmsis-nn", out_root / f"{name}-dense")["instructions"],
                     "passed": mve.passed and scalar.passed, "ops": ops, "layers": manifest["layers"],
                     "per_layer": {lc.index: lc.instructions for lc in mve.layers}})
    return rows, ok


def floor_instructions(layer: dict) -> float:
    """The floor of one manifest layer (table (d)): MACs / 16 + (weights + inputs) / 16 + 3 per output."""
    from math import prod

    from dmxgen.report.macs import layer_macs

    inputs = prod(layer["inputs"][0]) if layer.get("inputs") else 0
    return layer_macs(layer) / 16 + (layer.get("dense_weight_bytes", 0) + inputs) / 16 + 3 * prod(layer["output"])


def floor_rows(models: list[dict]) -> list[list[str]]:
    """Table (d): per model and weighted kind, MACs, MVE instructions, instructions per MAC, floor, ratio."""
    from dmxgen.report.macs import layer_macs

    body = []
    for r in models:
        for kind in ("conv2d", "depthwise_conv2d", "fully_connected"):
            layers = [lay for lay in r["layers"] if lay["op"] == kind]
            macs = sum(layer_macs(lay) for lay in layers)
            if not macs:
                continue
            instr = sum(r["per_layer"].get(lay["index"], 0) for lay in layers)
            floor = sum(floor_instructions(lay) for lay in layers)
            body.append([r["model"], kind, f"{macs:,}", f"{instr:,}", f"{instr / macs:.2f}", f"{floor:,.0f}",
                         f"{instr / floor:.2f}x"])
    return body


def op_rows(models: list[dict]) -> list[list[str]]:
    """Table (c): scalar and MVE instructions per op kind, summed over the models."""
    total: dict[str, list[int]] = {}
    for r in models:
        for kind, (sc, mv) in r["ops"].items():
            t = total.setdefault(kind, [0, 0])
            t[0], t[1] = t[0] + sc, t[1] + mv
    order = sorted(total, key=lambda k: -total[k][0])
    return [[k, f"{total[k][0]:,}", f"{total[k][1]:,}", f"{total[k][0] / max(total[k][1], 1):.1f}x"] for k in order]


def render(sparse: list[dict], models: list[dict]) -> str:
    parts = []
    if sparse:
        layers, whole = [r for r in sparse if r["layer"] != "model"], [r for r in sparse if r["layer"] == "model"]
        keys = ("dense_scalar", "dense_mve", "dcsr_mve", "dcsr_scalar", "auto_mve")
        tot = {k: sum(r[k] for r in layers) for k in keys}

        def line(name, r, op="", matrix="", zeros="", fmt=""):
            return [name, op, matrix, zeros, f"{r['dense_scalar']:,}", f"{r['dense_mve']:,}", f"{r['dcsr_mve']:,}",
                    f"{r['dense_mve'] / r['dcsr_mve']:.2f}x", f"{r['auto_mve']:,}" + (f" ({fmt})" if fmt else ""),
                    f"{r['dense_mve'] / r['auto_mve']:.2f}x", f"{r['dense_scalar'] / r['dense_mve']:.2f}x",
                    f"{r['dcsr_scalar'] / r['dcsr_mve']:.2f}x"]
        body = [line(r["layer"], r, r["op"], "x".join(map(str, r["matrix"])), f"{r['sparsity']:.1%}",
                     r["auto_format"]) for r in layers]
        body.append(line("total", tot))
        body += [line("whole model", r) for r in whole]
        parts.append(f"(a) {SPARSE}, pruned layers: instructions per inference and layer\n" + table(
            body, ["layer", "op", "matrix", "zeros", "dense scalar", "dense MVE", "dCSR MVE", "dCSR speed-up",
                   "auto MVE", "auto speed-up", "MVE/scalar dense", "MVE/scalar dCSR"]))
    if models:
        body = [[r["model"], f"{r['scalar']:,}", f"{r['mve']:,}", f"{r['tflm_cmsis_nn']:,}",
                 f"{r['mve'] / r['tflm_cmsis_nn']:.2f}", f"{r['scalar'] / r['mve']:.1f}x",
                 "yes" if r["mve"] < r["tflm_cmsis_nn"] else "NO", "PASS" if r["passed"] else "FAIL"]
                for r in models]
        parts.append("(b) MLPerf Tiny, dense weights: instructions per inference\n" + table(
            body, ["model", "dmxgen scalar", "dmxgen MVE", "TFLM+CMSIS-NN", "MVE/TFLM", "MVE speed-up",
                   "beats TFLM", "bit-exact"]))
    if models:
        parts.append("(c) the same models, per op kind (summed over them): scalar vs MVE kernels\n" + table(
            op_rows(models), ["op", "scalar", "MVE", "speed-up"]))
        parts.append("(d) MVE instructions per MAC and against the floor (MACs/16 + (weights + inputs)/16 + 3 per "
                     "output)\n" + table(floor_rows(models), ["model", "op", "MACs", "MVE instructions",
                                                              "per MAC", "floor", "to floor"]))
    note = ("QEMU 7.2 mps3-an547 Cortex-M55, -icount shift=5 (instructions = SysTick ticks / 1.024; every "
            "MVE instruction counts one); scalar = the same export built with -DDMX_NO_MVE")
    return "\n\n".join(parts + [note])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MLPERF), help="comma-separated subset of: " + ", ".join(MLPERF))
    ap.add_argument("--no-sparse", action="store_true", help=f"skip table (a) ({SPARSE})")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_mve"), help="where to export and build")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    if problem := setup_problem("bench_mve", names, MLPERF) or tflm_unavailable():
        print(problem, file=sys.stderr)
        return 2
    out_root = Path(args.out)
    sparse, ok_sparse = sparse_rows(out_root) if not args.no_sparse else ([], True)
    models, ok_models = model_rows(names, out_root)
    if args.json:
        print(json.dumps({"sparse_l_90": sparse, "mlperf_tiny": models}, indent=2))
    else:
        print(render(sparse, models))
    return 0 if ok_sparse and ok_models else 1


if __name__ == "__main__":
    raise SystemExit(main())
