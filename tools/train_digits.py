"""Train LeNet on scikit-learn's digits, compress it per models/lenet_config.yaml, save it.

    python tools/train_digits.py --out build/demo
    dmxgen export build/demo/lenet_digits.pt2 --format dcsr -o build/demo/lenet_c

With --target-kb (or --weights-fraction) the config is not used: dmxgen.compress_to_size
prunes the int8 model until its exported weights, biases and per-channel constants
fit the target (history.json records every step). --weights-fraction 0.1 sets the
target so that the weights alone are a tenth of their dense int8 bytes.
--width sets LeNet's conv widths, --int4 gives named layers INT4 weights
before the loop starts, --storage is the format the bytes are counted in
(`make demo` passes tools/demo.py's RECIPE).

Writes, in --out: lenet_float.pt and lenet_compressed.pt (state dicts, which
a later run reuses instead of training again; --retrain forces training),
lenet_digits.pt2 (dmxgen.save: what `dmxgen export` reads), digits_test.npy
(the test images as the int8 NHWC codes the exported C takes) and
summary.json. Prints float vs compressed accuracy and the integer
reference's agreement with the fake-quantized model.

--early-exit runs the early-exit example instead (tools/train_digits_ee.py: a deeper
LeNet with two exit heads, thresholds chosen on a validation split, exported, verified
and run on the emulated M55); the arguments after it are that script's.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for models/
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for train_digits_ee (--early-exit)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--early-exit" in argv:
        import train_digits_ee

        return train_digits_ee.main([a for a in argv if a != "--early-exit"])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--early-exit", action="store_true",
                    help="run the early-exit example (tools/train_digits_ee.py) with the arguments that follow")
    ap.add_argument("--out", default="build/digits", help="output folder (default build/digits)")
    ap.add_argument("--config", default=str(ROOT / "models" / "lenet_config.yaml"))
    ap.add_argument("--epochs", type=int, default=20, help="float training epochs")
    ap.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs per pruning step")
    ap.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    ap.add_argument("--seed", type=int, default=0)
    target = ap.add_mutually_exclusive_group()
    target.add_argument("--target-kb", type=float, help="shrink to this many kB (1000 B) with compress_to_size")
    target.add_argument("--weights-fraction", type=float,
                        help="shrink until the weights are this fraction of their dense int8 bytes")
    ap.add_argument("--storage", default="dcsr", choices=["auto", "dense", "csr", "dcsr"],
                    help="storage the weights are counted (and later exported) in (default dcsr)")
    ap.add_argument("--width", type=int, default=16, help="LeNet's conv1 channels (conv2 has twice as many)")
    ap.add_argument("--int4", default="", metavar="LAYER,...",
                    help="shrink: layers given INT4 weights from the start (dense INT4 is stored two a byte)")
    ap.add_argument("--step", type=float, default=0.1, help="shrink: the density a dense layer is cut to")
    ap.add_argument("--shrink-epochs", type=int, default=6, help="retraining epochs per shrink step")
    ap.add_argument("--val-fraction", type=float, default=0.25,
                    help="shrink: share of the training images held out to validate each step")
    ap.add_argument("--shrink-lr", type=float, default=3e-3)
    ap.add_argument("--drop-limit", type=float, default=1.0, help="fragile when validation drops more (points)")
    ap.add_argument("--retrain-layers", default="all", choices=["layer", "all"],
                    help="shrink: retrain only the pruned layer (the paper) or all layers (default)")
    a = ap.parse_args(argv)
    shrinking = a.target_kb is not None or a.weights_fraction is not None
    torch.set_num_threads(1)  # tiny layers: threads only add contention
    from dmxgen.api import Model, reference_outputs, save
    from dmxgen.compress.sizing import model_bytes
    from dmxgen.errors import DmxError
    from models import lenet

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_text = Path(a.config).read_text()
    recipe = (f"shrink|{a.target_kb}|{a.weights_fraction}|{a.storage}|{a.shrink_epochs}|{a.shrink_lr}|"
              f"{a.drop_limit}|{a.retrain_layers}|{a.int4}|{a.step}|{a.val_fraction}"
              if shrinking else f"{cfg_text}|{a.finetune}")
    key = hashlib.sha256(f"{recipe}|{a.width}|{a.epochs}|{a.seed}".encode()).hexdigest()[:16]
    f_float, f_q, f_sum = out / "lenet_float.pt", out / "lenet_compressed.pt", out / "summary.json"
    data = lenet.digits_data(a.seed)
    t0 = time.time()
    old = json.loads(f_sum.read_text()) if f_sum.exists() else {}
    reuse = not a.retrain and f_float.exists() and f_q.exists() and old.get("key") == key
    try:
        net = lenet.LeNet(width=a.width)
        if reuse:
            try:
                net.load_state_dict(torch.load(f_float, weights_only=True))
                model = Model(copy.deepcopy(net)).transform(int4_config(a) if shrinking else a.config)
                model.load_state_dict(torch.load(f_q, weights_only=True))
                if shrinking:
                    label_densities(model)
                print(f"reusing the checkpoints in {out} (--retrain to train again)")
            except Exception as e:  # unreadable, or made by another version of the code: train again
                print(f"cannot reuse the checkpoints in {out} ({str(e).splitlines()[0]}); training again")
                reuse = False
        if not reuse:
            torch.manual_seed(a.seed)  # lenet.train_float's recipe at any width
            net = lenet.LeNet(width=a.width)
            lenet.fit(net, data, a.epochs, lr=1e-2, seed=a.seed)
            torch.save(net.state_dict(), f_float)
            if shrinking:
                model, history = shrink(net, data, a)
                history.save(out / "history.json")
            else:
                model = lenet.compress(copy.deepcopy(net), data, a.config, epochs=a.finetune, seed=a.seed)
            torch.save(model.state_dict(), f_q)
        model.eval()
        acc_float = lenet.accuracy(net, data.x_test, data.y_test)
        acc_q = lenet.accuracy(model, data.x_test, data.y_test)
        path = save(model, out / "lenet_digits.pt2", data.x_test[:1])
        graph = model.to_graph(data.x_test[:1])
    except DmxError as e:
        print(f"train_digits: error: {e}", file=sys.stderr)
        return 2
    codes = model.quantize_input(data.x_test)
    np.save(out / "digits_test.npy", codes)
    ref = reference_outputs(graph, codes).astype(np.int64)
    fq = model.output_codes(data.x_test)
    y = data.y_test.numpy()
    diff = np.abs(ref.astype(np.int64) - fq)
    stored = model_bytes(model, data.x_test, a.storage)  # the bytes `dmxgen export --format STORAGE` writes
    shrunk = json.loads((out / "history.json").read_text()) if shrinking and (out / "history.json").exists() \
        else None
    summary = {
        "key": key, "float_accuracy": acc_float, "compressed_accuracy": acc_q,
        "integer_accuracy": float((ref.argmax(1) == y).mean()),
        "same_class": float((ref.argmax(1) == fq.argmax(1)).mean()),
        "logits_identical": float((diff == 0).mean()),
        "logits_within_one_step": float((diff <= 1).mean()), "max_logit_diff": int(diff.max()),
        "sparsity": model.sparsity(), "width": a.width, "storage": a.storage,
        "weight_bytes_dense": stored.dense_weight_bytes, "weight_bytes_stored": stored.weight_bytes,
        "param_bytes": stored.param_bytes, "formats": {n: r.format for n, r in stored.layers.items()},
        "test_images": int(len(y)), "model": str(path),
        "recipe": "compress_to_size" if shrinking else "config",
    }
    if shrunk:
        summary.update(target_bytes=shrunk["target_bytes"], reached=shrunk["reached"],
                       exported_bytes=shrunk["final_bytes"], shrink_message=shrunk["message"],
                       fragile=shrunk["fragile"])
    f_sum.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"digits: {len(data.x_train)} train / {len(y)} test images, {time.time() - t0:.1f} s")
    print(f"accuracy: float {100 * acc_float:.1f}%, compressed (fake-quant) {100 * acc_q:.1f}%, "
          f"integer reference {100 * summary['integer_accuracy']:.1f}%")
    print("sparsity: " + ", ".join(f"{n} {100 * s:.1f}%" for n, s in model.sparsity().items()))
    print(f"integer reference vs fake-quant: same class on {100 * summary['same_class']:.1f}% of images; "
          f"logits identical {100 * summary['logits_identical']:.2f}%, within one step "
          f"{100 * summary['logits_within_one_step']:.2f}%")
    print(f"weights: {stored.dense_weight_bytes} bytes dense int8, {stored.weight_bytes} bytes as {a.storage} ("
          + ", ".join(f"{n} {r.format} {r.weight_bytes}" for n, r in stored.layers.items())
          + f"); {stored.param_bytes} bytes of bias/multiplier/shift arrays")
    if shrunk:
        print(f"shrink: {shrunk['message']}")
    print(f"saved {path}")
    return 0


def shrink(net, data, a):
    """compress_to_size on the float net; the target from --target-kb or --weights-fraction."""
    from dmxgen.api import Model
    from dmxgen.commands.shrink import digits_loaders
    from dmxgen.compress.sizing import model_bytes
    from dmxgen.compress.sparsecomp import compress_to_size

    given = net
    if int4_config(a):  # those layers start INT4: compress_to_size keeps a transformed model's formats
        given = Model(copy.deepcopy(net)).transform(int4_config(a))
        with given.calibrating():
            given(data.x_train)
    target_kb = a.target_kb
    if target_kb is None:  # the weights at a fraction of dense int8, the other arrays as they are
        int8 = Model(copy.deepcopy(net)).transform(None)
        with int8.calibrating():
            int8(data.x_train)
        size = model_bytes(int8, data.x_test, a.storage)
        target_kb = (size.param_bytes + a.weights_fraction * size.dense_weight_bytes) / 1000
    train, test = digits_loaders(data, seed=a.seed)
    torch.manual_seed(a.seed)
    return compress_to_size(given, target_kb, train, test, epochs=a.shrink_epochs, lr=a.shrink_lr,
                            accuracy_drop_limit=a.drop_limit, storage=a.storage, retrain=a.retrain_layers,
                            step=a.step, val_fraction=a.val_fraction, seed=a.seed)


def int4_config(a) -> dict | None:
    """The config giving --int4's layers INT4 per-channel weights (None when there are none)."""
    names = [n.strip() for n in a.int4.split(",") if n.strip()]
    return {n: {"weight_format": "INT4(PER_CHANNEL)"} for n in names} or None


def label_densities(model) -> None:
    """Reloaded masks: show each layer's density as its TOPK sparseness (the .pt2 metadata)."""
    from dmxgen.compress.sparsecomp import set_label

    for name, layer in model.weighted_layers().items():
        d = float(layer.weight_mask.mean())
        if d < 1.0:
            set_label(model, name, d)


if __name__ == "__main__":
    sys.exit(main())
