"""`make demo`: the main job end to end, on real data, in a few minutes on 2 cores.

1. train LeNet on scikit-learn's digits, prune it to 90% and quantize it to
   int8 with models/lenet_config.yaml, fine-tune (tools/train_digits.py; a
   later run reuses its checkpoints);
2. `dmxgen export --format dcsr`: integer C with dCSR weights;
3. `dmxgen verify`: the generated C, built on the host with sanitizers,
   equals the numpy reference to the bit;
4. `make -C firmware sim`: the same C on an emulated Cortex-M55 (QEMU
   mps3-an547) prints PASS;
5. a summary: accuracy, weight bytes dense vs dCSR, arena bytes, instructions.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, capture: bool = False) -> str:
    print("$", " ".join(args), flush=True)
    r = subprocess.run(args, check=False, text=True, capture_output=capture, cwd=ROOT)
    if r.returncode != 0:
        if capture:
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
        raise SystemExit(f"demo: step failed (exit {r.returncode}): {' '.join(args)}")
    if capture:
        sys.stdout.write(r.stdout)
    return r.stdout if capture else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/demo", help="working folder (default build/demo)")
    ap.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    a = ap.parse_args()
    out = (ROOT / a.out).resolve() if not Path(a.out).is_absolute() else Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dmxgen = str(Path(sys.executable).with_name("dmxgen"))
    exported = out / "lenet_c"

    run(sys.executable, "tools/train_digits.py", "--out", str(out), *(["--retrain"] if a.retrain else []))
    run(dmxgen, "export", str(out / "lenet_digits.pt2"), "--format", "dcsr", "-o", str(exported),
        "--input", str(out / "digits_test.npy"))
    run(dmxgen, "verify", str(exported))
    sim = run("make", "-s", "-C", "firmware", "sim", f"MODEL={exported}", capture=True)

    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((exported / "manifest.json").read_text())
    total = next((line.split() for line in sim.splitlines() if line.startswith("TOTAL")), None)
    print()
    print("== dmxgen demo: LeNet on scikit-learn digits ==")
    print(f"accuracy            float {100 * summary['float_accuracy']:.1f}%  ->  int8 + 90% sparse "
          f"{100 * summary['integer_accuracy']:.1f}% (numpy integer reference)")
    n = summary.get("test_images", 0)
    print(f"integer reference vs PyTorch fake-quant: same class on {100 * summary['same_class']:.0f}% of {n} "
          f"test images, identical logits on {100 * summary['logits_identical']:.0f}%")
    print(f"weights             dense int8 {manifest['dense_weight_bytes']:,} B  ->  dCSR "
          f"{manifest['weight_bytes']:,} B ({manifest['dense_weight_bytes'] / manifest['weight_bytes']:.2f}x)")
    print(f"activation arena    {manifest['arena_size']:,} B")
    if total:
        print(f"Cortex-M55 (QEMU)   {int(total[2]):,} instructions per inference (generated C, MVE kernels, -O2)")
    print(f"firmware            {'PASS' if 'PASS' in sim else 'FAIL'}  (exported C in {exported})")
    return 0 if "PASS" in sim else 1


if __name__ == "__main__":
    sys.exit(main())
