"""`make demo`: the main job end to end, on real data, in a few minutes on 2 cores.

1. train LeNet (width 32) on scikit-learn's digits, quantize it (int8; INT4
   for conv1 and fc2, the small layers that stay dense) and let
   dmxgen.compress_to_size prune and retrain it until its exported weights are
   a tenth of their dense int8 bytes (RECIPE below; a later run reuses its
   checkpoints; --config uses models/lenet_config.yaml's hand-picked 90% on
   the width-16 LeNet and dCSR instead);
2. `dmxgen export --format auto` (`dcsr` with --config): integer C, each
   layer's weights in the format compress_to_size counted (dCSR, CSR or dense);
3. `dmxgen verify`: the generated C, built on the host with sanitizers,
   equals the numpy reference to the bit;
4. `make -C firmware sim`: the same C on an emulated Cortex-M55 (QEMU
   mps3-an547) prints PASS;
5. a summary: float vs compressed accuracy, weight bytes dense int8 vs as
   exported (per layer), arena bytes, instructions.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# tools/train_digits.py options of the demo's compress_to_size run (tests/torch/test_sparsecomp_digits.py
# runs the same): weights counted as `dmxgen export --format auto` stores them; docs/compression.md says why.
RECIPE = ("--storage", "auto", "--width", "32", "--int4", "conv1,fc2", "--step", "0.03", "--shrink-epochs", "12",
          "--val-fraction", "0.1")


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
    ap.add_argument("--config", action="store_true",
                    help="compress with models/lenet_config.yaml instead of compress_to_size")
    ap.add_argument("--weights-fraction", default="0.1", help="compress_to_size target (default 0.1)")
    a = ap.parse_args()
    out = (ROOT / a.out).resolve() if not Path(a.out).is_absolute() else Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dmxgen = str(Path(sys.executable).with_name("dmxgen"))
    exported = out / "lenet_c"

    recipe = [] if a.config else ["--weights-fraction", a.weights_fraction, *RECIPE]
    fmt = "dcsr" if a.config else "auto"
    run(sys.executable, "tools/train_digits.py", "--out", str(out), *recipe, *(["--retrain"] if a.retrain else []))
    run(dmxgen, "export", str(out / "lenet_digits.pt2"), "--format", fmt, "-o", str(exported),
        "--input", str(out / "digits_test.npy"))
    run(dmxgen, "verify", str(exported))
    sim = run("make", "-s", "-C", "firmware", "sim", f"MODEL={exported}", capture=True)

    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((exported / "manifest.json").read_text())
    total = next((line.split() for line in sim.splitlines() if line.startswith("TOTAL")), None)
    print()
    print("== dmxgen demo: LeNet on scikit-learn digits ==")
    how = "int8 + 90% sparse" if summary.get("recipe") != "compress_to_size" else "compressed"
    print(f"accuracy            float {100 * summary['float_accuracy']:.1f}%  ->  {how} "
          f"{100 * summary['integer_accuracy']:.1f}% (numpy integer reference; "
          f"{round(100 * (summary['integer_accuracy'] - summary['float_accuracy']), 1) + 0.0:+.1f} points)")
    n = summary.get("test_images", 0)
    print(f"integer reference vs PyTorch fake-quant: same class on {100 * summary['same_class']:.0f}% of {n} "
          f"test images, identical logits on {100 * summary['logits_identical']:.0f}%")
    rows = [r for r in manifest["layers"] if "dense_weight_bytes" in r]
    print(f"weights             dense int8 {manifest['dense_weight_bytes']:,} B  ->  exported "
          f"{manifest['weight_bytes']:,} B ({manifest['dense_weight_bytes'] / manifest['weight_bytes']:.2f}x): "
          + ", ".join(f"{r['name']} {_stored(r)} {r['weight_bytes']:,} B" for r in rows))
    if "target_bytes" in summary:
        got = manifest["weight_bytes"] + manifest["param_bytes"]
        print(f"compress_to_size    weights + bias/multiplier/shift arrays {got:,} B, target "
              f"{summary['target_bytes']:,} B: {'reached' if summary['reached'] else 'NOT reached'}; "
              f"weights are 1/{manifest['dense_weight_bytes'] / manifest['weight_bytes']:.1f} of dense int8")
        if not summary["reached"]:
            print(f"                    {summary['shrink_message']}")
    print(f"activation arena    {manifest['arena_size']:,} B")
    if total:
        print(f"Cortex-M55 (QEMU)   {int(total[2]):,} instructions per inference (generated C, MVE kernels, -O2)")
    print(f"firmware            {'PASS' if 'PASS' in sim else 'FAIL'}  (exported C in {exported})")
    return 0 if "PASS" in sim else 1


def _stored(row: dict) -> str:
    """A manifest layer's storage, INT4 packing named."""
    return "dense int4" if row.get("format") == "dense" and row["weight_bytes"] < row["dense_weight_bytes"] \
        else row.get("format", "dense")


if __name__ == "__main__":
    sys.exit(main())
