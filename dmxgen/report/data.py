"""Everything the report shows, as one JSON-able dict (what `dmxgen report --json` prints)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import DmxError
from . import compare, early_exit, records
from .macs import layer_macs

REPORT_VERSION = 1


def load_manifest(out: Path) -> dict:
    if not out.is_dir():
        raise DmxError(f"{out}: no such directory (expected a folder written by dmxgen export)")
    manifest = records.read_json(out / "manifest.json", "the manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        raise DmxError(f"{out}: no manifest.json with layers (not a folder written by dmxgen export for C)")
    return manifest


def _output_buffers(manifest: dict) -> dict[int, dict]:
    """Layer index -> the arena (or I/O) buffer its output starts in; aliased outputs have none."""
    found: dict[int, dict] = {}
    for t in manifest.get("tensors", []):
        if not str(t.get("name", "")).startswith("scratch:") and t.get("first_op", -1) >= 0:
            found.setdefault(int(t["first_op"]), t)
    return found


def _layer_row(layer: dict, buffer: dict | None, counts: dict[int, int]) -> dict:
    i = int(layer["index"])
    macs = layer_macs(layer)
    insns = counts.get(i)
    return {
        "index": i, "name": layer.get("name"), "op": layer.get("op"), "kernel": layer.get("kernel"),
        "inputs": layer.get("inputs", []), "output": layer.get("output"), "macs": macs,
        "format": layer.get("format"), "weight_bytes": int(layer.get("weight_bytes") or 0),
        "dense_weight_bytes": int(layer.get("dense_weight_bytes") or 0),
        "param_bytes": int(layer.get("param_bytes") or 0), "sparsity": layer.get("sparsity"),
        "storage": buffer.get("storage") if buffer else "alias",
        "arena_offset": buffer.get("offset") if buffer else None,
        "arena_bytes": buffer.get("bytes") if buffer else None,
        "scratch_bytes": int(layer.get("scratch_bytes") or 0), "in_place": bool(layer.get("in_place")),
        "instructions": insns, "instructions_per_mac": insns / macs if insns is not None and macs else None,
    }


def _tflm_section(rows: list[dict], tflm, model: str) -> list[dict]:
    """Per TFLM kernel set: totals and, per dmxgen layer, the matched operator's instructions."""
    sections = []
    for run in compare.select(tflm, model):
        pairs = compare.align(rows, run["ops"])
        sections.append({
            "kernels": run.get("kernels", "?"), "model": run.get("model"),
            "instructions": run.get("instructions"), "arena_used_bytes": run.get("arena_used_bytes"),
            "flash": run.get("flash"), "ram": run.get("ram"),
            "layers": {str(i): {"op": o.get("op"), "index": o.get("index"), "instructions": o.get("instructions")}
                       for i, o in pairs.items()},
        })
    return sections


def gather(out: str | Path, tflm_file: str | Path | None = None) -> dict:
    """Read OUT (manifest, bench results, ladder) and optionally TFLM figures into the report's data."""
    out = Path(out)
    manifest = load_manifest(out)
    bench = records.read_json(out / records.BENCH_FILE, "the bench results")
    counts = {int(r["index"]): int(r["instructions"]) for r in (bench or {}).get("layers", [])
              if isinstance(r, dict) and "index" in r and "instructions" in r}
    buffers = _output_buffers(manifest)
    rows = [_layer_row(layer, buffers.get(int(layer["index"])), counts) for layer in manifest["layers"]]
    model = Path(str(manifest.get("source", {}).get("name") or out.name)).stem
    tflm = None
    if tflm_file is not None:
        raw = records.read_json(Path(tflm_file), "the TFLM results")
        if raw is None:
            raise DmxError(f"{tflm_file}: no such file (write it with tools/bench_tflm.py -o FILE)")
        tflm = _tflm_section(rows, raw, model)
        if not tflm:
            raise DmxError(f"{tflm_file}: no TFLM runs with per-operator counts (tools/bench_tflm.py -o FILE)")
        for section in tflm:
            for r in rows:
                hit = section["layers"].get(str(r["index"]))
                r.setdefault("tflm", {})[section["kernels"]] = hit["instructions"] if hit else None
    macs = sum(r["macs"] for r in rows)
    total = (bench or {}).get("total_instructions")
    summary = {
        "model": model, "source": manifest.get("source", {}), "dmxgen_version": manifest.get("dmxgen_version"),
        "format": manifest.get("format"), "semantics": manifest.get("semantics"),
        "input": manifest.get("input"), "output": manifest.get("output"),
        "layers": len(rows), "ops": dict(Counter(r["op"] for r in rows).most_common()),
        "macs": macs, "weight_bytes": manifest.get("weight_bytes"),
        "dense_weight_bytes": manifest.get("dense_weight_bytes"), "param_bytes": manifest.get("param_bytes"),
        "arena_size": manifest.get("arena_size"), "io_bytes": manifest.get("io_bytes", {}),
        "peak_activation_ram": manifest.get("peak_activation_ram"),
        "firmware_size": (bench or {}).get("size"), "total_instructions": total,
        "instructions_per_mac": total / macs if total and macs else None,
    }
    data = {"report_version": REPORT_VERSION, "folder": str(out), "summary": summary, "layers": rows,
            "tensors": manifest.get("tensors", []), "bench": bench, "tflm": tflm, "ladder": records.ladder(out)}
    exits = early_exit.section(out, manifest, bench)
    if exits is not None:  # only an early-exit export has the key: other reports stay as they were
        data["early_exit"] = exits
    return data
