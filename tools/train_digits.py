"""Train LeNet on scikit-learn's digits, compress it per models/lenet_config.yaml, save it.

    python tools/train_digits.py --out build/demo
    dmxgen export build/demo/lenet_digits.pt2 --format dcsr -o build/demo/lenet_c

Writes, in --out: lenet_float.pt and lenet_compressed.pt (state dicts, which
a later run reuses instead of training again; --retrain forces training),
lenet_digits.pt2 (dmxgen.save: what `dmxgen export` reads), digits_test.npy
(the test images as the int8 NHWC codes the exported C takes) and
summary.json. Prints float vs compressed accuracy and the integer
reference's agreement with the fake-quantized model.
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


def weight_bytes(graph) -> tuple[int, int]:
    """(dense int8 bytes, dCSR bytes) of all weights, as formats.md counts them."""
    from dmxgen import codecs
    from dmxgen.codecs.view import as_matrix

    dense = dcsr = 0
    for op in graph.ops:
        w = graph.weights(op)
        if w is None:
            continue
        dense += w.data.size
        dcsr += codecs.encode("dcsr", as_matrix(op.kind, w.data)).nbytes if op.kind != "depthwise_conv2d" \
            else w.data.size
    return dense, dcsr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/digits", help="output folder (default build/digits)")
    ap.add_argument("--config", default=str(ROOT / "models" / "lenet_config.yaml"))
    ap.add_argument("--epochs", type=int, default=20, help="float training epochs")
    ap.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs per pruning step")
    ap.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny layers: threads only add contention
    from dmxgen.api import Model, reference_outputs, save
    from dmxgen.errors import DmxError
    from models import lenet

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_text = Path(a.config).read_text()
    key = hashlib.sha256(f"{cfg_text}|{a.epochs}|{a.finetune}|{a.seed}".encode()).hexdigest()[:16]
    f_float, f_q, f_sum = out / "lenet_float.pt", out / "lenet_compressed.pt", out / "summary.json"
    data = lenet.digits_data(a.seed)
    t0 = time.time()
    old = json.loads(f_sum.read_text()) if f_sum.exists() else {}
    reuse = not a.retrain and f_float.exists() and f_q.exists() and old.get("key") == key
    try:
        net = lenet.LeNet()
        if reuse:
            try:
                net.load_state_dict(torch.load(f_float, weights_only=True))
                model = Model(copy.deepcopy(net)).transform(a.config)
                model.load_state_dict(torch.load(f_q, weights_only=True))
                print(f"reusing the checkpoints in {out} (--retrain to train again)")
            except Exception as e:  # unreadable, or made by another version of the code: train again
                print(f"cannot reuse the checkpoints in {out} ({str(e).splitlines()[0]}); training again")
                reuse = False
        if not reuse:
            net = lenet.train_float(data, epochs=a.epochs, seed=a.seed)
            torch.save(net.state_dict(), f_float)
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
    dense, dcsr = weight_bytes(graph)
    summary = {
        "key": key, "float_accuracy": acc_float, "compressed_accuracy": acc_q,
        "integer_accuracy": float((ref.argmax(1) == y).mean()),
        "same_class": float((ref.argmax(1) == fq.argmax(1)).mean()),
        "logits_identical": float((diff == 0).mean()),
        "logits_within_one_step": float((diff <= 1).mean()), "max_logit_diff": int(diff.max()),
        "sparsity": model.sparsity(), "weight_bytes_dense": dense, "weight_bytes_dcsr": dcsr,
        "test_images": int(len(y)), "model": str(path),
    }
    f_sum.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"digits: {len(data.x_train)} train / {len(y)} test images, {time.time() - t0:.1f} s")
    print(f"accuracy: float {100 * acc_float:.1f}%, compressed (fake-quant) {100 * acc_q:.1f}%, "
          f"integer reference {100 * summary['integer_accuracy']:.1f}%")
    print("sparsity: " + ", ".join(f"{n} {100 * s:.1f}%" for n, s in model.sparsity().items()))
    print(f"integer reference vs fake-quant: same class on {100 * summary['same_class']:.1f}% of images; "
          f"logits identical {100 * summary['logits_identical']:.2f}%, within one step "
          f"{100 * summary['logits_within_one_step']:.2f}%")
    print(f"weights: {dense} bytes dense int8, {dcsr} bytes dCSR")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
