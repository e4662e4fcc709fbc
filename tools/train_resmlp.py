"""ResMLP with ReLU at hidden 2h, ReLU at h and LERP-PSA at h, trained alike, int8, exported.

    python tools/train_resmlp.py --out build/resmlp            # scikit-learn's digits (ships, no download)
    python tools/train_resmlp.py --data-dir ~/cifar10 --out build/resmlp_cifar   # a local CIFAR-10

PSA-Compress's claim, on data that ships: a learnable per-feature activation (LERP-PSA,
64 grid points over [-4, 4], lowered to one interpolated int8 table per feature) lets a
channel MLP of half the hidden size keep the accuracy of the wider ReLU one. Each variant
is trained with the same recipe and seeds (float), then quantized to int8 (per-channel
weights, per-tensor activations), fine-tuned with fake quantization and calibrated. The
int8 accuracy is the fake-quantized model's, which tests hold equal to the exported C to
the bit. The first seed's LERP-PSA model is saved, exported with
`--target c,hls --hls-interface stream` and verified bit-exact on the host.

Digits are 8x8 images: 16 tokens of 2x2 pixels. --data-dir takes CIFAR-10 in torchvision's
ImageFolder layout (DIR/train/<class>/*.png, DIR/test/<class>/*.png): 64 tokens of 4x4x3.
Writes summary.json (the table) and resmlp_lerp_psa.pt2 to --out.
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

VARIANTS = (("relu_2h", "relu", 2), ("relu_h", "relu", 1), ("lerp_psa_h", "lerp_psa", 1))
INT8 = {"type:Linear": {"weight_format": "INT8(PER_CHANNEL)", "output_format": "INT8"}}


def digits_tokens(seed: int):
    from models.lenet import digits_data
    from models.resmlp import tokens

    d = digits_data(seed)
    return (torch.from_numpy(tokens(d.x_train[:, 0].numpy(), 2)), d.y_train,
            torch.from_numpy(tokens(d.x_test[:, 0].numpy(), 2)), d.y_test)


def folder_tokens(root: Path, patch: int = 4):
    """CIFAR-10 as torchvision's ImageFolder lays it out: root/{train,test}/<class>/<image>."""
    from PIL import Image

    def load(split: str):
        classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        xs, ys = [], []
        for k, c in enumerate(classes):
            for f in sorted((root / split / c).iterdir()):
                xs.append(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0)
                ys.append(k)
        x = np.stack(xs)  # [N, H, W, 3]
        n, h, w, ch = x.shape
        t = x.reshape(n, h // patch, patch, w // patch, patch, ch).transpose(0, 1, 3, 2, 4, 5)
        t = t.reshape(n, (h // patch) * (w // patch), patch * patch * ch)
        return torch.from_numpy(np.ascontiguousarray(t)), torch.tensor(ys)

    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise SystemExit(f"train_resmlp: {root} has no train/ and test/ folders (torchvision ImageFolder layout)")
    return (*load("train"), *load("test"))


def int8_model(net, x_train, y_train, epochs: int, seed: int):
    """Quantize per INT8, fine-tune with fake quantization, calibrate again."""
    from dmxgen.api import Model
    from models.resmlp import fit

    torch.manual_seed(seed)
    model = Model(net).transform(INT8)
    with model.calibrating():
        model(x_train)
    if epochs:
        fit(model, x_train, y_train, epochs=epochs, lr=1e-3, seed=seed)
    with model.calibrating():
        model(x_train)
    return model.eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/resmlp", help="output folder (default build/resmlp)")
    ap.add_argument("--data-dir", type=Path, help="CIFAR-10 in ImageFolder layout (default: scikit-learn's digits)")
    ap.add_argument("--dim", type=int, default=16, help="token width D (default 16)")
    ap.add_argument("--hidden", type=int, default=16, help="h: the channel MLP's hidden size (default 16)")
    ap.add_argument("--depth", type=int, default=2, help="blocks (default 2)")
    ap.add_argument("--epochs", type=int, default=40, help="float training epochs (default 40)")
    ap.add_argument("--finetune", type=int, default=5, help="int8 fine-tuning epochs (default 5)")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per variant (default 3)")
    ap.add_argument("--no-export", action="store_true", help="skip the export and verify of the LERP-PSA model")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny layers: threads only add contention
    from tqdm import tqdm

    from dmxgen.api import save
    from models.resmlp import ResMLP, accuracy, fit

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    x_train, y_train, x_test, y_test = folder_tokens(a.data_dir) if a.data_dir else digits_tokens(0)
    tokens, patch = x_train.shape[1], x_train.shape[2]
    classes = int(y_train.max()) + 1
    rows: dict[str, dict] = {}
    saved = None
    bar = tqdm(total=len(VARIANTS) * a.seeds * (a.epochs + a.finetune), desc="train_resmlp", unit="epoch")
    for label, act, factor in VARIANTS:
        floats, ints = [], []
        for seed in range(a.seeds):
            torch.manual_seed(seed)
            net = ResMLP(tokens, patch, a.dim, factor * a.hidden, a.depth, classes, act)
            fit(net, x_train, y_train, epochs=a.epochs, seed=seed, progress=lambda: bar.update(1))
            floats.append(accuracy(net, x_test, y_test))
            model = int8_model(net, x_train, y_train, a.finetune, seed)
            bar.update(a.finetune)
            ints.append(accuracy(model, x_test, y_test))
            if label == "lerp_psa_h" and seed == 0:
                saved = save(model, out / "resmlp_lerp_psa.pt2", x_test[:1])
        rows[label] = {"hidden": factor * a.hidden, "float": floats, "int8": ints,
                       "float_mean": float(np.mean(floats)), "int8_mean": float(np.mean(ints))}
    bar.close()
    summary = {"data": str(a.data_dir) if a.data_dir else "sklearn digits (16 tokens of 2x2)", "dim": a.dim,
               "depth": a.depth, "epochs": a.epochs, "finetune": a.finetune, "seeds": a.seeds,
               "variants": rows, "seconds": round(time.time() - t0, 1)}
    if saved is not None and not a.no_export:
        summary["export"] = export_and_verify(saved, out / "resmlp_lerp_psa")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nResMLP D={a.dim}, depth {a.depth}, {a.seeds} seeds, test accuracy (mean, min..max):")
    print("| variant | hidden | float | int8 |")
    print("|---|---|---|---|")
    for label, r in rows.items():
        cell = {k: f"{100 * np.mean(r[k]):.1f}% ({100 * min(r[k]):.1f}..{100 * max(r[k]):.1f})" for k in ("float", "int8")}
        print(f"| {label} | {r['hidden']} | {cell['float']} | {cell['int8']} |")
    psa, narrow, wide = (rows[k]["int8_mean"] for k in ("lerp_psa_h", "relu_h", "relu_2h"))
    print(f"LERP-PSA at h vs ReLU at h: {100 * (psa - narrow):+.1f} points; vs ReLU at 2h: {100 * (psa - wide):+.1f} "
          f"points (int8)")
    if "export" in summary:
        print(f"export: {summary['export']}")
    return 0


def export_and_verify(model_file: Path, folder: Path) -> str:
    """`dmxgen export --target c,hls --hls-interface stream` and `dmxgen verify`: the verdict line."""
    cli = [sys.executable, "-m", "dmxgen.cli"]
    r = subprocess.run(cli + ["export", str(model_file), "--target", "c,hls", "--hls-interface", "stream",
                              "--format", "dcsr", "-o", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        return f"export failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
    r = subprocess.run(cli + ["verify", str(folder)], capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if "BIT-EXACT" in ln or "DIFFER" in ln]
    return lines[-1].strip() if lines else f"verify exit {r.returncode}"


if __name__ == "__main__":
    sys.exit(main())
