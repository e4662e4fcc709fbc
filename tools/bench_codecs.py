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

TARGET_S = 5.0
OP_KINDS = {3: "conv2d", 4: "depthwise_conv2d", 9: "fully_connected"}  # tflite.BuiltinOperator


def weight_matrices(path: Path) -> list[np.ndarray]:
    """The 2-D views of a model's conv/FC weights (a tiny reader; the real one is the tflite frontend)."""
    import tflite

    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = OP_KINDS.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if kind is None:
            continue
        t = graph.Tensors(op.Inputs(1))
        w = model.Buffers(t.Buffer()).DataAsNumpy().view(np.int8).reshape(t.ShapeAsNumpy())
        out.append(as_matrix(kind, w))
    return out


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
