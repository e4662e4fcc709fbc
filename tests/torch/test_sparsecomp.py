"""compress_to_size on a tiny MLP: fragile layers, the stop message, validation never on the test loader."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dmxgen
from dmxgen.compress.sizing import model_bytes
from dmxgen.errors import DmxError


def make_data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(16, 4, generator=torch.Generator().manual_seed(99))
    x = torch.randn(n, 16, generator=g)
    return x, (x @ teacher).argmax(1)


def loader(x, y, shuffle=False, batch=64):
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(0) if shuffle else None)


class Counting:
    """A test loader that counts how often it is iterated."""

    def __init__(self, inner):
        self.inner, self.passes = inner, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.inner)


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x, y = make_data(512, 0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def data():
    xtr, ytr = make_data(512, 0)
    xte, yte = make_data(256, 1)
    return xtr, ytr, xte, yte


def run(net, data, target_kb, test=None, **kw):
    xtr, ytr, xte, yte = data
    test = test if test is not None else loader(xte, yte)
    kw.setdefault("epochs", 1)
    kw.setdefault("log", False)
    return dmxgen.compress_to_size(net, target_kb, loader(xtr, ytr, shuffle=True), test, lr=1e-2, **kw)


@pytest.fixture(scope="module")
def too_small(mlp, data):
    """A target below the bytes of the biases and per-channel constants alone: unreachable."""
    xtr, ytr, xte, yte = data
    test = Counting(loader(xte, yte))
    model, history = run(mlp, data, 0.05, test=test, accuracy_drop_limit=0.0)
    return model, history, test


def test_too_small_target_stops_with_a_clear_message(too_small):
    model, h, _ = too_small
    assert not h.reached and h.final_bytes > h.target_bytes == 50
    assert h.message.startswith("stopped: every remaining layer is fragile")
    assert "target 50 B not reached" in h.message and f"best model is {h.final_bytes:,} B" in h.message
    assert "below the 432 B of biases and per-channel constants" in h.message  # 12 B per output channel
    for name in model.weighted_layers():
        assert name in h.message  # each layer is named as fragile or as unable to shrink


def test_fragile_layers_are_restored_to_their_last_good_state(too_small, mlp, data):
    model, h, _ = too_small
    fragile = [r for r in h.records if r.get("fragile")]
    assert fragile, "a limit of 0 points must make some layer fragile"
    assert sorted(h.fragile) == sorted({r["layer"] for r in fragile})
    for r in fragile:
        assert r["val_accuracy"] < h.baseline_accuracy  # the rule that marked it
    for name, layer in model.weighted_layers().items():
        accepted = [r["density"] for r in h.records if r["layer"] == name and r["stage"] == "prune"
                    and not r.get("fragile") and "note" not in r]
        want = accepted[-1] if accepted else 1.0
        got = float(layer.weight_mask.mean())
        assert got == pytest.approx(want, abs=1.0 / layer.weight_mask.numel()), name
        assert torch.all(layer.layer.weight[layer.weight_mask == 0] == 0)  # pruned weights are zero
    assert h.final_accuracy >= h.baseline_accuracy  # never returns a model that broke the limit
    xtr = data[0]
    assert model_bytes(model, xtr[:1]).total == h.final_bytes  # the size it reports is the model's


def test_the_test_loader_is_only_read_for_the_report(too_small, mlp, data):
    """Same run with garbage test data: identical decisions; the test loader is read twice (before, after)."""
    model, h, test = too_small
    assert test.passes == 2
    xte = torch.randn(256, 16, generator=torch.Generator().manual_seed(5))
    garbage = loader(xte, torch.randint(0, 4, (256,), generator=torch.Generator().manual_seed(6)))
    model2, h2 = run(mlp, data, 0.05, test=garbage, accuracy_drop_limit=0.0)
    assert h2.records == h.records and h2.final_bytes == h.final_bytes
    assert h2.test_accuracy != h.test_accuracy
    for (n, a), (_, b) in zip(model.weighted_layers().items(), model2.weighted_layers().items()):
        assert torch.equal(a.weight_mask, b.weight_mask), n


def test_validation_uses_the_given_loader(mlp, data):
    xtr, ytr, xte, yte = data
    xv, yv = make_data(128, 7)
    with torch.no_grad():
        want = 100.0 * float((mlp(xv).argmax(1) == yv).float().mean())
    _, h = dmxgen.compress_to_size(mlp, 100, loader(xtr, ytr), loader(xte, yte), loader(xv, yv), epochs=0,
                                   log=False)
    assert h.baseline_accuracy == pytest.approx(want)


def test_a_reached_target_stops_at_once_and_logs(mlp, data):
    lines = []
    model, h = run(mlp, data, 100, log=lines.append)
    assert h.reached and h.records == [] and h.final_bytes == h.start_bytes <= 100_000
    assert lines[0].startswith("start: ") and "target 100,000 B" in lines[0]
    assert lines[-1].startswith("reached ")


def test_one_log_line_per_step_and_records_with_the_issues_fields(mlp, data, capsys):
    lines = []
    model, h = run(mlp, data, 1.035, log=lines.append, epochs=3, retrain="all", step=0.3)
    steps = [x for x in lines if x.startswith("[")]
    assert len(steps) == len(h.records) > 0
    for r in h.records:
        assert {"iteration", "layer", "density", "layer_bytes", "total_bytes", "target_bytes",
                "val_accuracy"} <= set(r)
    assert h.reached and h.final_bytes <= 1035
    run(mlp, data, 1.035, log=False, epochs=3, retrain="all", step=0.3)
    assert capsys.readouterr().out == ""  # log=False is silent (and no progress bar off a terminal)


def test_a_transformed_model_keeps_its_formats_through_separation(mlp, data):
    """INT4 weights set by a config survive the loop, also on the factors of a separated layer."""
    import copy

    given = dmxgen.Model(copy.deepcopy(mlp)).transform({"0": {"weight_format": "INT4"}})
    with given.calibrating():
        given(data[0])
    model, h = run(given, data, 0.9, separation_kb=0.3, rank=2, accuracy_drop_limit=100.0)
    sep = [r for r in h.records if r["stage"] == "separate"]
    assert [r["layer"] for r in sep] == ["0"] and not sep[0].get("reverted")
    layers = model.weighted_layers()
    assert sorted(layers) == ["0.0", "0.1", "2"]
    assert [layers[n].wfmt.bits for n in ("0.0", "0.1", "2")] == [4, 4, 8]
    assert [layers[n].layer.out_features for n in ("0.0", "0.1")] == [2, 32]
    assert h.reached and model_bytes(model, data[0]).total == h.final_bytes <= 900


def test_caller_model_is_not_modified(mlp, data):
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    run(mlp, data, 1.035, epochs=1, step=0.3)
    assert all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())


@pytest.mark.parametrize("kw,msg", [({"target_kb": 0}, "target_kb must be a positive"),
                                    ({"step": 0.0}, "step must be a density"),
                                    ({"retrain": "some"}, "retrain must be"),
                                    ({"target_kb": 1, "model": "net"}, "needs a torch nn.Module")])
def test_bad_arguments_are_one_clear_error(mlp, data, kw, msg):
    xtr, ytr, xte, yte = data
    args = {"model": mlp, "target_kb": 1, **kw}
    with pytest.raises(DmxError, match=msg):
        dmxgen.compress_to_size(args.pop("model"), args.pop("target_kb"), loader(xtr, ytr), loader(xte, yte),
                                log=False, **args)


def test_validation_split_is_disjoint_seeded_and_keeps_distributed_shards():
    from torch.utils.data import DistributedSampler

    from dmxgen.compress.loaders import split_loader

    ds = TensorDataset(torch.arange(100).float()[:, None], torch.arange(100))
    train, val = split_loader(DataLoader(ds, batch_size=8, shuffle=True), 0.2, seed=3)
    seen_val = torch.cat([y for _, y in val]).tolist()
    seen_train = torch.cat([y for _, y in train]).tolist()
    assert len(seen_val) == 20 and sorted(seen_val + seen_train) == list(range(100))
    assert torch.cat([y for _, y in split_loader(DataLoader(ds, batch_size=8), 0.2, seed=3)[1]]).tolist() == seen_val
    shards = []
    for rank in (0, 1):
        dl = DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True))
        shards.append(torch.cat([y for _, y in split_loader(dl, 0.2, seed=3)[1]]).tolist())
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == sorted(seen_val)
    batches = [(torch.zeros(2, 1), torch.full((2,), i)) for i in range(20)]  # any iterable of batches
    train, val = split_loader(batches, 0.1)
    assert [int(y[0]) for _, y in val] == [9, 19] and len(train) == 18
