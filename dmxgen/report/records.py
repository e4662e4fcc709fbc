"""Results other commands leave in an exported folder, so `dmxgen report` can show them without
re-running anything: bench_m55.json (`dmxgen bench`) and verify/<step>.json (one per rung of the
verification ladder)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ..errors import DmxError

BENCH_FILE = "bench_m55.json"
STEPS_DIR = "verify"
# The verification ladder, in the order a model climbs it: step id -> what is compared.
LADDER = {
    "reference_vs_tflite": "numpy reference vs the TFLite interpreter (dmxgen verify MODEL)",
    "host_c": "generated C on the host, ASan/UBSan, vs the reference (dmxgen verify OUT)",
    "m55": "firmware on the emulated Cortex-M55 vs expected.h (dmxgen bench OUT)",
    "hls_csim": "HLS C simulation vs the reference (make -C hls csim)",
}


def _write_json(path: Path, obj) -> None:
    """Whole file or nothing: written to a temporary name beside it (unique, so two writers
    cannot collide), then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_bench(out: str | Path, results: dict, size: dict | None = None) -> Path | None:
    """Store what `dmxgen bench` measured (its JSON report, plus the image size when known)
    in OUT/bench_m55.json, and the M55 rung of the ladder. A folder that cannot be written
    (read-only) costs a warning, not the measurement."""
    out = Path(out)
    data = dict(results, size=size) if size else dict(results)
    try:
        _write_json(out / BENCH_FILE, data)
        record_step(out, "m55", bool(results.get("passed")) and bool(results.get("repeatable", True)),
                    str(results.get("verdict") or ""))
    except OSError as e:
        print(f"dmxgen: warning: bench results not stored in {out} ({e.strerror or e})", file=sys.stderr)
        return None
    return out / BENCH_FILE


def record_step(out: str | Path, step: str, bit_exact: bool, detail: str = "") -> Path:
    """Record that a rung of the verification ladder ran and whether it was bit-exact."""
    if step not in LADDER:
        raise DmxError(f"unknown verification step {step!r}; known: {', '.join(LADDER)}")
    path = Path(out) / STEPS_DIR / f"{step}.json"
    _write_json(path, {"step": step, "bit_exact": bool(bit_exact), "detail": detail})
    return path


def read_json(path: Path, what: str):
    """A JSON file's content, None when absent, DmxError naming the file when unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DmxError(f"{path}: {what} is not readable JSON ({e})") from None


def ladder(out: Path) -> list[dict]:
    """Every rung with its status: bit-exact, MISMATCH, or not run (nothing recorded it)."""
    rows = []
    for step, what in LADDER.items():
        rec = read_json(out / STEPS_DIR / f"{step}.json", f"the {step} record")
        if not isinstance(rec, dict):
            rows.append({"step": step, "what": what, "status": "not run", "detail": ""})
        else:
            rows.append({"step": step, "what": what, "status": "bit-exact" if rec.get("bit_exact") else "MISMATCH",
                         "detail": str(rec.get("detail", ""))})
    return rows
