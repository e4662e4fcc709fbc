#!/usr/bin/env python3
"""Time the weight codecs on every model in ../shared/models.

Usage: python tools/bench_codecs.py [MODELS_DIR]

Prints, per model, the weight tensors (input 1 of CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED), their parameter count and the seconds spent encoding all of
them in each format, then checks the target: the largest model encodes in all
formats in under 5 s.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmxgen.codecs import FORMATS, encode  # noqa: E402
from dmxgen.codecs.view import as_matrix  # noqa: E402
from dmxgen.frontends.tflite import load_tflite  # noqa: E402

TARGET_S = 5.0


def weight_matrices(path: Path) -> list[np.ndarray]:
    """The 2-D views of a model's conv/FC weights, read by the project's frontend."""
    g = load_tflite(path)
    return [as_matrix(op.kind, g.weights(op).data) for op in g.ops if g.weights(op) is not None]


def main(argv: list[str]) -> int:
    models = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "models"
    files = sorted(models.rglob("*.tflite"))
    if not files:
        print(f"no .tflite models under {models}; nothing to bench")
        return 0
    head = ["model", "tensors", "params", *FORMATS, "total"]
    rows, results = [], []
    for path in files:
        mats = weight_matrices(path)
        times = {}
        for fmt in FORMATS:
            t0 = time.perf_counter()
            for m in mats:
                encode(fmt, m)
            times[fmt] = time.perf_counter() - t0
        total = sum(times.values())
        params = sum(m.size for m in mats)
        results.append((path, params, total))
        rows.append([str(path.relative_to(models)), str(len(mats)), str(params),
                     *(f"{times[f]:.3f}" for f in FORMATS), f"{total:.3f}"])
    width = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, width, strict=True))))
    most = max(p for _, p, _ in results)
    largest = [(path, t) for path, p, t in results if p == most]
    worst_path, worst = max(largest, key=lambda x: x[1])
    ok = worst < TARGET_S
    print(f"\ntarget: every weight tensor of the largest model ({most} params; {len(largest)} file(s)) "
          f"encoded in all {len(FORMATS)} formats in < {TARGET_S:.0f} s")
    print(f"slowest of them: {worst_path.name} {worst:.3f} s -> {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
