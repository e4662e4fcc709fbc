"""`make demo`: the main job end to end on a model the project makes itself.

Builds a small int8 CNN as a .tflite (no TensorFlow needed), inspects it and
verifies the numpy reference against TFLite's reference kernels to the bit.
Later stages (export, host build, firmware) run when their backends exist.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from dmxgen.testing.tflite_builder import small_cnn


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="build/demo")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = out / "small_cnn.tflite"
    m = small_cnn(seed=0, sparsity=0.8)
    m.save(model, [0], [len(m.sg.tensors) - 1])
    dmxgen = str(Path(sys.executable).with_name("dmxgen"))
    run(dmxgen, "inspect", str(model))
    run(dmxgen, "verify", str(model), "--inputs", "16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
