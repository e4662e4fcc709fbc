"""The report's early-exit block: which exit the folder's stored vectors take, and what bench measured.

The exits come from test_vectors/expected_ee.npz (the integer reference's exit per stored vector,
written by the export), so the distribution is there without running anything; the averages and
the exit branches' extra flash come from bench_m55.json when `dmxgen bench OUT` has run."""
from __future__ import annotations

from pathlib import Path

from ..errors import DmxError

# what `dmxgen bench` stores under "early_exit" (commands/_early_exit_bench.py) and the block repeats
BENCH_KEYS = ("vectors", "instructions_with_early_exit", "instructions_without_early_exit",
              "model_flash_bytes", "model_ee_flash_bytes", "exit_branches_extra_flash_bytes")


def section(out: Path, manifest: dict, bench: dict | None) -> dict | None:
    """None for a model without early exit, else policy, thresholds, the share of stored vectors
    per exit (the final classifier last) and bench's early-exit figures (None when not measured)."""
    ee = manifest.get("early_exit")
    if not isinstance(ee, dict):
        return None
    if not ee.get("expected"):
        raise DmxError(f"{out}/manifest.json: early_exit names no expected exits file (re-export the model)")
    from ..backends.c_early_exit import stored_exits

    n = int((manifest.get("test_vectors") or {}).get("count") or 0)
    taken = stored_exits(out, manifest, n)[0].tolist()
    heads = list(ee.get("exits") or [])
    thresholds = list(ee.get("thresholds") or [])
    if len(thresholds) != len(heads):
        raise DmxError(f"{out}/manifest.json: early_exit lists {len(heads)} exits and {len(thresholds)} thresholds")
    if any(not 0 <= k <= len(heads) for k in taken):
        raise DmxError(f"{out / ee['expected']}: an exit outside 0..{len(heads)} (the manifest lists "
                       f"{len(heads)} exits and the final classifier)")
    measured = (bench or {}).get("early_exit") if isinstance(bench, dict) else None
    measured = measured if isinstance(measured, dict) else {}
    per_exit = measured.get("instructions_per_exit")  # not stored by bench yet: annotated when it is
    rows = []
    for k, head in enumerate([*heads, {"entry": "final", "tensor": manifest.get("output", {}).get("name")}]):
        count = taken.count(k)
        rows.append({"exit": k, "entry": head.get("entry"), "tensor": head.get("tensor"),
                     "threshold": thresholds[k] if k < len(heads) else None, "vectors": count,
                     "fraction": count / n if n else None,
                     "instructions": per_exit[k] if isinstance(per_exit, list) and k < len(per_exit) else None})
    return {"policy": ee.get("policy"), "thresholds": thresholds, "vectors": n, "exits": rows,
            "head_weight_bytes": ee.get("head_weight_bytes"), "head_param_bytes": ee.get("head_param_bytes"),
            "arena_size": ee.get("arena_size"),
            "bench": {**{key: measured.get(key) for key in BENCH_KEYS}, "exits": measured.get("exits")}
            if measured else None}
