"""One rank of the torchrun test (test_sparsecomp_ddp.py): LeNet on digits under DistributedDataParallel.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/torch/ddp_shrink_worker.py OUT_DIR

Each rank writes OUT_DIR/rank<r>.json: a hash of its final masks and weights, its size and history.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    import dmxgen
    from dmxgen.compress.sizing import model_bytes
    from models import lenet

    data = lenet.digits_data(0)
    net = lenet.train_float(data, epochs=3, seed=rank)  # different per rank: DDP broadcasts rank 0's weights
    ddp = DistributedDataParallel(net)
    train_ds, test_ds = TensorDataset(data.x_train, data.y_train), TensorDataset(data.x_test, data.y_test)
    train = DataLoader(train_ds, batch_size=32, sampler=DistributedSampler(train_ds, shuffle=True, seed=0))
    test = DataLoader(test_ds, batch_size=128, sampler=DistributedSampler(test_ds, shuffle=False))
    lines = []
    model, h = dmxgen.compress_to_size(ddp, 6.0, train, test, epochs=1, storage="dcsr", separate_layers=False,
                                       accuracy_drop_limit=30.0, log=lines.append)
    digest = hashlib.sha256()
    for name, layer in sorted(model.weighted_layers().items()):
        digest.update(name.encode())
        digest.update(layer.weight_mask.numpy().tobytes())
        _, w_codes, _, _, b_codes = layer.quantized()  # the integers that get exported; the bias codes
        digest.update(w_codes.numpy().tobytes())  # depend on the activation ranges, calibrated on each
        digest.update(b_codes.numpy().tobytes())  # rank's own shard and then reduced
    size = model_bytes(model, data.x_test[:1], "dcsr").total
    (out / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "masks_and_weights": digest.hexdigest(), "size": size, "final_bytes": h.final_bytes,
        "reached": h.reached, "records": h.records, "log_lines": len(lines)}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
