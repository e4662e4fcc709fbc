"""dmxgen.EarlyExit: exits on named tensors, fake-quantized heads, training helpers, costs,
threshold selection, the integer reference's early exit, and refusals."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxgen
from dmxgen.compress.exit_thresholds import select_thresholds
from dmxgen.errors import DmxError
from dmxgen.graph import exit_policy as ep
from dmxgen.reference.early_exit import run_early_exit


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.pool1 = nn.MaxPool2d(2)
        self.block = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.block(x)
        return self.fc(torch.flatten(x, 1))


def head(features: int, classes: int = 5) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(features, classes))


def make(exits=None, policy="margin", seed=0):
    torch.manual_seed(seed)
    exits = exits if exits is not None else {"block": head(32), "pool1": head(64)}
    return dmxgen.EarlyExit(Net(), exits, policy=policy, example_input=torch.rand(1, 1, 8, 8))


def data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) * 17).long() % 5  # a learnable label
    return x, y


def quantized(ee, x):
    ee.transform(None)
    with ee.calibrating():
        ee(x)
    ee.eval()
    return ee


def test_exits_are_ordered_by_depth_and_forward_returns_the_final_logits():
    ee = make()
    assert ee.exit_names == ["pool1", "block"]  # shallowest first, whatever the dict order
    x, _ = data(8)
    ee.eval()
    outs = ee(x, all_exits=True)
    assert len(outs) == 3 and torch.equal(ee(x), outs[-1])
    backbone = ee.backbone.eval()
    assert torch.equal(backbone(x), outs[-1])  # the backbone's own computation
    feats = backbone.pool1(F.relu(backbone.bn1(backbone.conv1(x))))
    assert torch.equal(outs[0], ee.heads[0](feats))  # exit 0 reads pool1's output
    assert torch.equal(outs[1], ee.heads[1](backbone.block(feats)))  # exit 1 reads the container's output


def test_an_fx_node_name_is_an_exit_point_too():
    ee = make({"relu": head(256)})  # F.relu's node: before pool1
    x, _ = data(4)
    ee.eval()
    b = ee.backbone
    assert torch.equal(ee(x, all_exits=True)[0], ee.heads[0](F.relu(b.bn1(b.conv1(x)))))


def test_heads_are_fake_quantized_like_the_backbone():
    x, _ = data()
    ee = quantized(make(), x)
    layers = ee.weighted_layers()
    assert {"heads.exit0.1", "heads.exit1.1", "backbone.conv1", "backbone.fc"} <= set(layers)
    codes = ee.logit_codes(x)
    for c, q in zip(codes, ee.output_quants()):
        s, zp = q.qparams()
        assert c.min() >= -128 and c.max() <= 127 and q.fmt.bits == 8
    with torch.no_grad():  # the head's output is on its int8 grid: dequantized codes exactly
        out = ee(x, all_exits=True)[0]
    s, zp = ee.output_quants()[0].qparams()
    assert torch.equal(out, (torch.from_numpy(codes[0]).float() - zp) * torch.tensor(s, dtype=torch.float32))


def test_frozen_training_moves_only_the_heads():
    x, y = data()
    ee = make()
    before = {k: v.clone() for k, v in ee.backbone.state_dict().items()}  # BatchNorm statistics included
    heads_before = [p.clone() for h in ee.heads for p in h.parameters()]
    losses = dmxgen.train_exits(ee, [(x[:48], y[:48]), (x[48:], y[48:])], epochs=3, lr=1e-2)
    after = ee.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not torch.equal(a, b) for a, b in zip(heads_before, (p for h in ee.heads for p in h.parameters())))
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert all(p.requires_grad for p in ee.backbone.parameters())  # restored after training


def test_joint_training_moves_the_backbone():
    x, y = data()
    ee = make()
    w = ee.backbone.conv1.weight.clone()
    dmxgen.train_exits(ee, [(x, y)], epochs=1, lr=1e-2, freeze_backbone=False)
    assert not torch.equal(w, ee.backbone.conv1.weight)


def test_simulate_exit_drops_the_deeper_stages():
    ee = make()
    ee.eval()
    x, _ = data(4)
    called = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: called.append(n))
             for n, m in (("conv1", ee.backbone.conv1), ("block", ee.backbone.block[0]), ("fc", ee.backbone.fc))]
    seen = {}
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        called.clear()
        k, logits = dmxgen.simulate_exit(ee, x, g)
        seen[k] = list(called)
        assert torch.equal(logits, ee(x, all_exits=True)[k])
    for h in hooks:
        h.remove()
    assert seen == {0: ["conv1"], 1: ["conv1", "block"], 2: ["conv1", "block", "fc"]}


def test_simulated_joint_training_runs_and_learns():
    x, y = data()
    ee = make()
    losses = dmxgen.train_exits(ee, [(x, y)], epochs=12, lr=1e-2, freeze_backbone=False, simulate=True)
    assert np.isfinite(losses).all() and min(losses[-4:]) < losses[0]


def test_exit_costs_count_the_stages_and_heads_run():
    ee = make()
    conv1 = 8 * 8 * 4 * 9
    head0 = 64 * 5
    conv2 = 4 * 4 * 8 * 4 * 9
    head1 = 32 * 5
    fc = 32 * 5
    assert ee.exit_costs(torch.rand(1, 1, 8, 8)) == [conv1 + head0, conv1 + head0 + conv2 + head1,
                                                     conv1 + head0 + conv2 + head1 + fc]


@pytest.mark.parametrize("kind", ["margin", "softmax"])
def test_integer_reference_takes_the_same_exit_with_the_same_bytes(kind):
    x, y = data(64)
    ee = make(policy=kind)
    dmxgen.train_exits(ee, [(x, y)], epochs=5, lr=1e-2)
    quantized(ee, x)
    codes = ee.logit_codes(x)
    scales = ee.exit_scales()
    conf = [ep.confidences(kind, c, s) for c, s in zip(codes[:-1], scales)]
    ee.policy = dmxgen.ExitPolicy(kind, tuple(int(np.median(c)) for c in conf))  # every exit gets inputs
    taken, out = ee.decide(x)
    assert set(taken.tolist()) == {0, 1, 2}
    graph = ee.to_graph(x[:1])
    assert list(graph.entries) == ["exit0", "exit1", "final"]
    inputs = ee.quantize_input(x)
    for i in range(len(x)):
        k, logits = run_early_exit(graph, ee.policy, inputs[i:i + 1])
        assert k == taken[i]
        assert logits.dtype == np.int8 and np.array_equal(logits.reshape(-1).astype(np.int64), out[i])


def brute_force(conf, correct, costs, target_acc):
    """The cheapest (cost, accuracy) over every threshold pair in the margin range, by loops."""
    best = None
    n = len(correct[0])
    for t0, t1 in itertools.product(range(ep.NEVER["margin"] + 1), repeat=2):
        acc = cost = 0
        for i in range(n):
            k = 0 if conf[0][i] >= t0 else 1 if conf[1][i] >= t1 else 2
            acc += correct[k][i]
            cost += costs[k]
        if acc / n >= target_acc and (best is None or (cost, -acc) < (best[0], -best[1])):
            best = (cost, acc)
    return best[0] / n, best[1] / n


def test_threshold_selection_matches_brute_force():
    rng = np.random.default_rng(3)
    n = 14
    labels = rng.integers(0, 3, n)
    conf = [rng.integers(0, 40, n), rng.integers(0, 40, n)]
    preds = [np.where(rng.random(n) < p, labels, (labels + 1) % 3) for p in (0.6, 0.8, 1.0)]
    correct = [(p == labels).astype(int) for p in preds]
    costs = [10, 35, 100]
    for target in (0.7, 0.85, 1.0):
        choice = select_thresholds("margin", conf, preds, labels, costs, target_accuracy=target)
        want_cost, want_acc = brute_force(conf, correct, costs, target)
        assert (choice.average_cost, choice.accuracy) == pytest.approx((want_cost, want_acc))
        t0, t1 = choice.policy.thresholds  # the thresholds reach what they claim
        taken = [0 if conf[0][i] >= t0 else 1 if conf[1][i] >= t1 else 2 for i in range(n)]
        assert np.mean([costs[k] for k in taken]) == pytest.approx(want_cost)
        assert sum(choice.exit_fractions) == pytest.approx(1.0)
    assert choice.baseline_accuracy == 1.0 and choice.full_cost == 100


def test_threshold_selection_for_a_cost_target():
    labels = np.array([0, 1, 0, 1])
    conf = [np.array([9, 1, 5, 0])]
    preds = [np.array([0, 0, 1, 1]), labels]  # exit 0 is right on inputs 0 and 3
    choice = select_thresholds("margin", conf, preds, labels, [1, 5], target_cost=3.0)
    # cost <= 3 means at least half exit early; best: t = 5 exits inputs 0 and 2 (one right) -> 3/4
    assert choice.policy.thresholds == (5,) and choice.accuracy == 0.75 and choice.average_cost == 3.0
    with pytest.raises(DmxError, match="no early-exit thresholds reach an average cost of 0.5"):
        select_thresholds("margin", conf, preds, labels, [1, 5], target_cost=0.5)
    with pytest.raises(DmxError, match="one target"):
        select_thresholds("margin", conf, preds, labels, [1, 5])


def test_choose_thresholds_from_a_loader_keeps_the_accuracy_target():
    x, y = data(96)
    ee = make()
    dmxgen.train_exits(ee, [(x, y)], epochs=5, lr=1e-2)
    quantized(ee, x)
    loader = [(x[:50], y[:50]), (x[50:], y[50:])]
    choice = dmxgen.choose_thresholds(ee, loader, max_accuracy_drop=0.05)
    codes = ee.logit_codes(x)
    final_acc = float((codes[-1].argmax(1) == y.numpy()).mean())
    assert choice.baseline_accuracy == final_acc
    taken, out = ee.decide(x, choice.policy)
    assert float((out.argmax(1) == y.numpy()).mean()) == pytest.approx(choice.accuracy)
    assert choice.accuracy >= final_acc - 0.05
    costs = ee.exit_costs(x[:1])
    assert choice.average_cost == pytest.approx(np.mean([costs[k] for k in taken]))


def test_refusals_name_the_exit():
    def refused(exits, match):
        with pytest.raises(DmxError, match=match) as e:
            make(exits)
        assert "\n" not in str(e.value)

    refused({"conv9": head(64)}, r"exit 'conv9': the backbone has no module or torch.fx node of that name")
    refused({"x": head(64)}, r"exit 'x': the model input is not an intermediate tensor")
    refused({"fc": head(5)}, r"exit 'fc': the backbone output is not an intermediate tensor")
    refused({"pool1": nn.Identity()}, r"exit 'pool1': its head returns shape \[1, 4, 4, 4\], not one logit vector")
    refused({"pool1": head(64, classes=3)}, r"exit 'pool1': its head gives 3 logits, the final classifier 5")
    with pytest.raises(DmxError, match=r"exit 'pool': module 'pool' is called 2 times"):
        class Twice(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3, padding=1)
                self.pool = nn.MaxPool2d(2)
                self.fc = nn.Linear(8, 5)

            def forward(self, x):
                return self.fc(torch.flatten(self.pool(self.pool(self.conv(x))), 1))

        dmxgen.EarlyExit(Twice(), {"pool": head(32)})
    with pytest.raises(DmxError, match="threshold"):
        make(policy=dmxgen.ExitPolicy("margin", (1,)))
    with pytest.raises(DmxError, match="'entropy' is not one of margin, softmax"):
        dmxgen.ExitPolicy("entropy", (1, 2))


def test_head_ops_and_the_baseline_graph():
    from dmxgen import reference
    from dmxgen.graph.early_exit import baseline, head_ops

    x, _ = data(16)
    ee = quantized(make(), x)
    graph = ee.to_graph(x[:1])
    heads = head_ops(graph)
    by_name = {op.name: op for op in graph.ops}
    assert {e: [by_name[o].kind for o in ops] for e, ops in heads.items()} == {
        "exit0": ["reshape", "fully_connected"], "exit1": ["reshape", "fully_connected"]}
    assert [o for ops in heads.values() for o in ops if by_name[o].kind == "fully_connected"] == [
        "heads.exit0.1", "heads.exit1.1"]
    base = baseline(graph)
    assert base.outputs == graph.outputs[-1:] and not base.has_entry_points
    assert len(base.ops) == len(graph.ops) - sum(len(v) for v in heads.values())
    assert not any(name.startswith("heads.") for name in base.tensors)
    inputs = ee.quantize_input(x)
    for i in range(len(x)):  # the backbone alone computes the final logits of the whole graph
        whole = reference.run(graph, [inputs[i:i + 1]])[graph.outputs[-1]]
        assert np.array_equal(reference.run(base, [inputs[i:i + 1]])[base.outputs[0]], whole)
