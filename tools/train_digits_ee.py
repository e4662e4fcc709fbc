"""The digits early-exit example end to end: train, choose thresholds, save, export, verify, run on the M55.

    python tools/train_digits_ee.py --out build/digits_ee            # the whole flow
    python tools/train_digits_ee.py --out build/digits_ee --no-sim   # without the emulated M55

The model is models/lenet_ee.py's: a three-conv LeNet with exits after the first
two conv blocks. The backbone trains first, then the exit heads with the
backbone frozen; everything is quantized to INT8 and calibrated. The
thresholds are chosen on a validation split of the training images for at
most --max-drop points of accuracy below the final classifier's (the test set
is only used to report). The test split is tools/train_digits.py's (the same
360 images).

Then, in --out:
  lenet_ee.pt2       dmxgen.save of the model with the chosen policy
  x_test.npy         the 360 test images as int8 input codes; y_test.npy their labels
  export/            `dmxgen export lenet_ee.pt2 --input x_test.npy` (all 360 images as vectors),
                     checked by `dmxgen verify` (host C, ASan/UBSan, both entry points) and,
                     unless --no-sim, run by `dmxgen bench` on the emulated Cortex-M55
  summary.json       every number printed, and ee_state.pt (the state dict)

Prints one screen: float and int8 accuracy without early exit, int8 accuracy
with it, the fraction of images leaving at each exit, the average M55
instructions per inference with and without early exit, and the flash the exit
branches add. Exit status 0 when every check holds (the integer reference, the
host C and the M55 take PyTorch's exits with PyTorch's bytes), 1 when one
fails, 2 on an error.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for models/


def evaluate(ee, graph, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Early exit vs the final classifier on (x, y), and the integer reference's agreement."""
    from dmxgen.reference.early_exit import run_early_exit

    taken, codes = ee.decide(x)
    every = ee.logit_codes(x)
    final = every[-1]
    labels = y.numpy()
    costs = ee.exit_costs(x[:1])
    inputs = ee.quantize_input(x)
    same = 0
    for i in range(len(x)):
        k, logits = run_early_exit(graph, ee.policy, inputs[i:i + 1])
        same += int(k == taken[i] and np.array_equal(logits.reshape(-1).astype(np.int64), codes[i]))
    heads = len(ee.exit_names)
    return {
        "images": int(len(labels)),
        "accuracy_early_exit": float((codes.argmax(1) == labels).mean()),
        "accuracy_final_only": float((final.argmax(1) == labels).mean()),
        "accuracy_per_exit_alone": [float((c.argmax(1) == labels).mean()) for c in every],
        "exit_counts": [int((taken == k).sum()) for k in range(heads + 1)],
        "exit_fractions": [float((taken == k).mean()) for k in range(heads + 1)],
        "average_macs_early_exit": float(np.mean([costs[k] for k in taken])),
        "macs_final_only": int(costs[-1]),
        "macs_per_exit": [int(c) for c in costs],
        "reference_agrees": int(same),
    }


def export_and_verify(model: Path, x_codes: np.ndarray, out: Path) -> dict:
    """`dmxgen export` with every test image as a vector, then `dmxgen verify` of both entry points."""
    from dmxgen.backends import host
    from dmxgen.targets import export, verify_folder

    images = out / "x_test.npy"
    np.save(images, x_codes)
    folder = out / "export"
    export(model, folder, input_files=(images,), n_vectors=0)
    report = verify_folder(folder, n_inputs=0, input_files=(images,))
    ee = report["early_exit"]
    heads = host.read_manifest(folder)["early_exit"]
    return {"folder": str(folder), "vectors": int(report["inputs"]),
            "bit_exact": bool(report["bit_exact"]), "bit_exact_early_exit": bool(ee["bit_exact"]),
            "exit_counts": [int(v) for v in ee["exits"]],
            "head_constant_bytes": int(heads["head_weight_bytes"] + heads["head_param_bytes"])}


class BenchError(Exception):
    """`dmxgen bench` failed to run (bad input, missing tools): its one-line message."""


def bench_m55(folder: Path) -> dict:
    """`dmxgen bench FOLDER --json` (one run): the firmware's early-exit averages and flash, and its verdict."""
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", "bench", str(folder), "--json", "--runs", "1"],
                       capture_output=True, text=True)
    if r.returncode not in (0, 1) or not r.stdout.strip():
        raise BenchError((r.stderr.strip().splitlines() or [f"dmxgen bench exited {r.returncode}"])[-1])
    report = json.loads(r.stdout)
    return {**report["early_exit"], "passed": bool(report["passed"]) and r.returncode == 0,
            "verdict": report.get("verdict")}


def summary_lines(s: dict) -> list[str]:
    """The one-screen summary of summary.json's numbers."""
    test, val, ex = s["test"], s["validation"], s["export"]
    names = [*s["exits"], "final"]
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        f"digits: {s['images']['train']} train / {s['images']['validation']} validation / "
        f"{test['images']} test images, {s['seconds']:.0f} s",
        f"policy: {s['policy']}, thresholds {s['thresholds']} (exits {', '.join(s['exits'])}), chosen on the "
        f"validation split for at most {s['max_drop']:g} point(s) of accuracy loss "
        f"(validation: {pct(val['accuracy'])} vs {pct(val['baseline_accuracy'])})",
        f"test accuracy without early exit: float {pct(s['float_accuracy_final_only'])}, "
        f"int8 {pct(test['accuracy_final_only'])}",
        f"test accuracy with early exit (int8): {pct(test['accuracy_early_exit'])} (each exit alone: "
        + ", ".join(f"{n} {pct(v)}" for n, v in zip(names, test["accuracy_per_exit_alone"])) + ")",
        "test exits: " + ", ".join(f"{n} {c} ({pct(f)})" for n, c, f in
                                   zip(names, test["exit_counts"], test["exit_fractions"])),
        f"MACs per image: early exit {test['average_macs_early_exit']:.0f} on average, "
        f"final only {test['macs_final_only']} (per exit: {', '.join(map(str, test['macs_per_exit']))})",
        f"integer reference vs fake-quant PyTorch: same exit and int8 logits on "
        f"{test['reference_agrees']}/{test['images']} test images",
        f"host C (dmxgen verify, ASan/UBSan, {ex['vectors']} vectors): model.c "
        f"{'bit-exact' if ex['bit_exact'] else 'DIFFERS'}, model_ee.c "
        f"{'bit-exact' if ex['bit_exact_early_exit'] else 'DIFFERS'}, exits {ex['exit_counts']}",
    ]
    m = s.get("m55")
    if m is None:
        lines.append(f"M55: not run ({s['m55_skipped']}); exit heads' constants {ex['head_constant_bytes']} bytes")
        return lines
    without, with_ = m["instructions_without_early_exit"], m["instructions_with_early_exit"]
    lines += [
        f"M55 (dmxgen bench, {m['vectors']} vectors, {'PASS' if m['passed'] else 'FAIL'}): average instructions "
        f"per inference {without} without early exit, {with_} with it ({without / with_:.2f}x fewer); "
        f"exits {m['exits']}",
        f"exit branches' extra flash: {m['exit_branches_extra_flash_bytes']} bytes (model_ee.o "
        f"{m['model_ee_flash_bytes']} - model.o {m['model_flash_bytes']}; heads' constants "
        f"{ex['head_constant_bytes']})",
    ]
    return lines


def failed_checks(s: dict) -> list[str]:
    """What disagrees: the reference, the host C or the M55 with PyTorch's exits and bytes."""
    test, ex, m = s["test"], s["export"], s.get("m55")
    bad = []
    if test["reference_agrees"] != test["images"]:
        bad.append("the integer reference differs from PyTorch")
    if not (ex["bit_exact"] and ex["bit_exact_early_exit"]) or ex["exit_counts"] != test["exit_counts"]:
        bad.append("the host C differs from the reference")
    if m is not None and (not m["passed"] or m["exits"] != test["exit_counts"]):
        bad.append("the M55 run differs from the reference")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/digits_ee", help="output folder (default build/digits_ee)")
    ap.add_argument("--epochs", type=int, default=20, help="float backbone training epochs")
    ap.add_argument("--head-epochs", type=int, default=10, help="exit head training epochs (backbone frozen)")
    ap.add_argument("--policy", default="margin", choices=["margin", "softmax"])
    ap.add_argument("--max-drop", type=float, default=1.0,
                    help="accuracy points the exits may lose on the validation split (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sim", action="store_true", help="skip the emulated Cortex-M55 (dmxgen bench)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny layers: threads only add contention
    import dmxgen
    from dmxgen import choose_thresholds, firmware
    from dmxgen.errors import DmxError
    from models import lenet, lenet_ee

    out = Path(a.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"train_digits_ee: error: --out {out}: {e.strerror}", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        s = lenet_ee.split(lenet.digits_data(a.seed), seed=a.seed)
        x, y = s.train.x_test, s.train.y_test
        ee = lenet_ee.train_float(s, epochs=a.epochs, head_epochs=a.head_epochs, seed=a.seed, policy=a.policy)
        float_accuracy = lenet.accuracy(ee, x, y)
        ee = lenet_ee.quantize(ee, s)
        val = lenet_ee.batches(s.x_val, s.y_val, seed=None)
        choice = choose_thresholds(ee, val, max_accuracy_drop=a.max_drop / 100)
        ee.policy = choice.policy
        test = evaluate(ee, ee.to_graph(x[:1]), x, y)
        model = dmxgen.save(ee, out / "lenet_ee.pt2", x[:1])
        np.save(out / "y_test.npy", y.numpy())
        exported = export_and_verify(model, np.asarray(ee.quantize_input(x)).astype(np.int8), out)
        missing = firmware.missing_tools()
        m55 = None if a.no_sim or missing else bench_m55(Path(exported["folder"]))
    except (DmxError, BenchError) as e:
        print(f"train_digits_ee: error: {e}", file=sys.stderr)
        return 2
    torch.save(ee.state_dict(), out / "ee_state.pt")
    summary = {"command": "python tools/train_digits_ee.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "policy": choice.policy.kind, "thresholds": list(choice.policy.thresholds), "exits": ee.exit_names,
               "max_drop": a.max_drop, "seconds": time.time() - t0,
               "images": {"train": int(len(s.train.x_train)), "validation": int(len(s.y_val))},
               "validation": {"images": int(len(s.y_val)), "accuracy": choice.accuracy,
                              "baseline_accuracy": choice.baseline_accuracy, "average_macs": choice.average_cost,
                              "exit_fractions": list(choice.exit_fractions)},
               "float_accuracy_final_only": float_accuracy, "test": test, "export": exported}
    if m55 is not None:
        summary["m55"] = m55
    else:
        summary["m55_skipped"] = "--no-sim" if a.no_sim else f"needs {', '.join(missing)}"
    bad = failed_checks(summary)
    summary["failed_checks"] = bad
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(summary_lines(summary)))
    for b in bad:
        print(f"FAIL: {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
