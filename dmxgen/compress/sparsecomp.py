"""compress_to_size: SparseComp's prune-and-retrain loop (Farina et al., EWSN 2024), sized exactly.

    model, history = dmxgen.compress_to_size(net, 10, train_loader, test_loader)

1. Optional layer separation (separation.py) while the largest Conv/Linear
   holds more than `separation_kb`, each followed by fine-tuning.
2. Until the exported size (sizing.py: the bytes `dmxgen export` writes for
   every Conv/Linear, weights plus bias and per-channel constants) is at most
   the target: take the largest layer not marked fragile, lower its density
   (dense -> `step`; else x0.9 until its encoded weights shrink to 90%, at most
   `max_tries` tries), retrain it alone with the magnitude mask re-applied
   after every optimizer step, and keep the epoch with the best validation
   accuracy. A layer whose validation accuracy falls more than
   `accuracy_drop_limit` points below the starting model's is restored to its
   last good state and marked fragile.
3. When every layer left is fragile the loop stops with a message and returns
   the best model found (the last accepted state) and the size it reached.

Validation uses `val_loader`, or a fixed split of the training data; the test
loader is only evaluated for the report, never to choose anything. Under
torch.distributed (a DistributedDataParallel model, DistributedSampler
loaders) every decision is made from all-reduced numbers and from weights DDP
keeps in sync, so every rank computes the same masks and sizes; only rank 0
logs.
"""
from __future__ import annotations

import copy
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..codecs.policy import EXPORT
from ..errors import DmxError
from ..progress import progress
from . import separation
from .layers import QuantWeighted
from .loaders import batches, device_of, set_epoch, split_loader
from .model import Model
from .ranks import Ranks
from .sizing import LayerSizer, ModelBytes
from .sparsity import Sparseness, compute_mask

KB = 1000  # target_kb and separation_kb are in kB of 1000 bytes


@dataclass
class History:
    """What the loop did: one record per step, the outcome, and the accuracies (in %)."""

    target_bytes: int
    storage: str
    records: list[dict] = field(default_factory=list)
    start_bytes: int = 0
    final_bytes: int = 0
    reached: bool = False
    message: str = ""
    baseline_accuracy: float = 0.0  # validation accuracy of the model as given
    final_accuracy: float = 0.0  # validation accuracy of the returned model
    baseline_test_accuracy: float | None = None  # report only
    test_accuracy: float | None = None  # report only
    fragile: list[str] = field(default_factory=list)
    layers: dict = field(default_factory=dict)  # final per-layer density, format and bytes

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


class _Log:
    """Log lines and progress bars (tqdm) on rank 0; bars only on a terminal."""

    def __init__(self, log, main: bool):
        self.sink = None if log is False or not main else (log if callable(log) else None)
        self.quiet = log is False or not main

    def __call__(self, line: str) -> None:
        if self.quiet:
            return
        if self.sink is not None:
            self.sink(line)
            return
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)

    def bar(self, iterable=None, **kw):
        return progress(iterable, enabled=not self.quiet, **kw)


def compress_to_size(model, target_kb, train_loader, test_loader, val_loader=None, *, epochs: int = 10,
                     lr: float = 1e-3, step: float = 0.1, accuracy_drop_limit: float = 5.0,
                     separate_layers: bool = True, storage: str = EXPORT.fmt, loss_fn=None, device=None, log=None,
                     min_sparsity: float = EXPORT.min_sparsity, separation_kb: float = 80.0, rank="vbmf",
                     max_tries: int = 30, val_fraction: float = 0.1, calibration_batches: int = 16,
                     retrain: str = "layer", seed: int = 0):
    """Prune (and optionally separate) `model` until its exported Conv/Linear bytes are at most
    target_kb * 1000; returns (the compressed dmxgen.Model, History).

    `model`: a trained nn.Module (wrapped with INT8 weights and activations), a
    dmxgen.Model already transformed by a config (its formats are kept), or
    either inside DistributedDataParallel. The caller's model is not modified.
    `storage` and `min_sparsity` are `dmxgen export`'s --format and --min-sparsity.
    `log`: None prints a line per step on rank 0, False is silent, a callable gets the lines.
    `retrain`: "layer" trains only the layer just pruned (the paper); "all" trains every layer
    (masks still re-applied), which recovers more accuracy per step on small models.
    """
    if retrain not in ("layer", "all"):
        raise DmxError(f"retrain must be 'layer' or 'all', got {retrain!r}")
    if target_kb is None or float(target_kb) <= 0:
        raise DmxError(f"target_kb must be a positive number of kB, got {target_kb!r}")
    if not 0.0 < step <= 1.0:
        raise DmxError(f"step must be a density in (0, 1], got {step}")
    if epochs < 0:
        raise DmxError(f"epochs must be >= 0, got {epochs}")
    ddp = model if _is_ddp(model) else None
    ranks = Ranks(ddp)
    if ddp is not None:
        model = ddp.module
    if not isinstance(model, nn.Module):
        raise DmxError(f"compress_to_size needs a torch nn.Module or a dmxgen.Model, got {type(model).__name__}")
    loop = _Loop(model, int(round(float(target_kb) * KB)), train_loader, test_loader, val_loader, ranks,
                 _Log(log, ranks.main), epochs=epochs, lr=lr, step=step, drop_limit=accuracy_drop_limit,
                 storage=storage, loss_fn=loss_fn or F.cross_entropy, device=device, min_sparsity=min_sparsity,
                 max_tries=max_tries, val_fraction=val_fraction, calibration_batches=calibration_batches, seed=seed,
                 retrain=retrain)
    return loop.run(separate_layers, int(round(separation_kb * KB)), rank)


def _is_ddp(m) -> bool:
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(m, DistributedDataParallel)


class _Loop:
    def __init__(self, model, target, train_loader, test_loader, val_loader, ranks: Ranks, log: _Log, *,
                 epochs, lr, step, drop_limit, storage, loss_fn, device, min_sparsity, max_tries, val_fraction,
                 calibration_batches, seed, retrain):
        self.ranks, self.log = ranks, log
        self.epochs, self.lr, self.step, self.drop_limit = epochs, lr, step, drop_limit
        self.storage, self.loss_fn, self.min_sparsity = storage, loss_fn, min_sparsity
        self.max_tries, self.calibration_batches = max_tries, calibration_batches
        self.retrain = retrain
        self.test_loader = test_loader
        if val_loader is None:
            train_loader, val_loader = split_loader(train_loader, val_fraction, seed)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.history = History(target, storage)
        self.given = model
        self.device = torch.device(device) if device is not None else device_of(model)
        self.example = next(iter(batches(train_loader, torch.device("cpu"))))[0][:1]
        self.sizer = LayerSizer(self.example.to(self.device), storage, min_sparsity)
        self.iteration = 0

    # -- data -----------------------------------------------------------------
    def accuracy(self, model: nn.Module, loader) -> float:
        """Top-1 accuracy in %, summed over all ranks."""
        was = model.training
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in batches(loader, self.device):
                out = model(x)
                correct += int((out.argmax(1) == y).sum())
                total += int(y.numel())
        model.train(was)
        correct, total = self.ranks.sum([correct, total])
        return 100.0 * correct / max(total, 1)

    def calibrate(self, model: Model) -> None:
        with model.calibrating():
            for i, (x, _) in enumerate(batches(self.train_loader, self.device)):
                if i >= self.calibration_batches:
                    break
                model(x)
        self.ranks.sync_ranges(model)

    def size(self, model: Model) -> ModelBytes:
        """The exact bytes (a full graph build); also what layer_bytes compares against."""
        return self.sizer.measure(model)

    def layer_bytes(self, model: Model, name: str) -> int:
        """`name`'s encoded weight bytes after a change to its mask alone (only it is re-encoded)."""
        return self.sizer.layer_bytes(model, name).weight_bytes

    # -- training -----------------------------------------------------------------
    def train(self, model: Model, params: list[nn.Parameter], desc: str) -> float:
        """Fine-tune `params` (all others frozen) for self.epochs, masks re-applied after every step;
        restore the epoch with the best validation accuracy and return that accuracy."""
        self.calibrate(model)
        best_acc, best_state = self.accuracy(model, self.val_loader), _snapshot(model)
        if not self.epochs or not params:
            return best_acc
        keep = {id(p) for p in params}
        flags = {p: p.requires_grad for p in model.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        runner = self.ranks.wrap(model)
        opt = torch.optim.Adam(params, lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        try:
            for epoch in self.log.bar(range(self.epochs), desc=desc, leave=False, unit="epoch"):
                set_epoch(self.train_loader, self.iteration * 1000 + epoch)
                runner.train()
                for x, y in batches(self.train_loader, self.device):
                    loss = self.loss_fn(runner(x), y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    apply_masks(model)
                sched.step()
                self.calibrate(model)
                acc = self.accuracy(model, self.val_loader)
                if acc > best_acc:
                    best_acc, best_state = acc, _snapshot(model)
        finally:
            for p, flag in flags.items():
                p.requires_grad_(flag)
        model.load_state_dict(best_state)
        model.eval()
        return best_acc

    # -- records ---------------------------------------------------------------------
    def record(self, stage: str, layer: str, sizes: ModelBytes, acc: float, **extra) -> None:
        parts = extra.pop("parts", None) or [layer]
        rec = {"iteration": self.iteration, "stage": stage, "layer": layer,
               "density": extra.pop("density", None),
               "layer_bytes": sum(sizes.layers[p].total for p in parts if p in sizes.layers),
               "total_bytes": sizes.total, "target_bytes": self.history.target_bytes,
               "val_accuracy": round(acc, 4), **extra}
        self.history.records.append(rec)
        dens = f"density {rec['density']:.4f}, " if rec["density"] is not None else ""
        flags = "".join(f", {k}" for k in ("fragile", "reverted") if extra.get(k))
        note = f" ({extra['note']})" if extra.get("note") else ""
        self.log(f"[{self.iteration:3d}] {stage} {layer}: {dens}layer {rec['layer_bytes']} B, "
                 f"total {sizes.total:,} B / target {self.history.target_bytes:,} B, "
                 f"val {acc:.2f}%{flags}{note}")

    # -- the loop ---------------------------------------------------------------------
    def start(self) -> Model:
        given = self.given
        self.history.baseline_accuracy = self.accuracy(given, self.val_loader)
        if self.test_loader is not None:
            self.history.baseline_test_accuracy = self.accuracy(given, self.test_loader)
        if isinstance(given, Model):
            if not given.transformed:
                raise DmxError("compress_to_size: the dmxgen.Model was never transformed; pass the plain "
                               "nn.Module or call model.transform(config) first")
            model = copy.deepcopy(given)
        else:  # moved before wrapping: a transformed Model's layers build on their weights' device
            model = Model(copy.deepcopy(given).to(self.device)).transform(None)
        self.calibrate(model)
        return model

    def run(self, separate_layers: bool, separation_bytes: int, rank) -> tuple[Model, History]:
        h = self.history
        model = self.start()
        self.accepted_acc = self.accuracy(model, self.val_loader)
        sizes = self.size(model)
        h.start_bytes = sizes.total
        self.log(f"start: {sizes.total:,} B ({sizes.weight_bytes:,} B weights + {sizes.param_bytes:,} B bias and "
                 f"per-channel constants, {self.storage}), target {h.target_bytes:,} B, "
                 f"val {h.baseline_accuracy:.2f}%")
        if separate_layers:
            model = self.separate(model, separation_bytes, rank)
        model, sizes = self.prune(model)
        self.calibrate(model)
        sizes = self.size(model)
        h.final_bytes, h.reached = sizes.total, sizes.total <= h.target_bytes
        h.final_accuracy = self.accuracy(model, self.val_loader)
        if self.test_loader is not None:
            h.test_accuracy = self.accuracy(model, self.test_loader)
        h.layers = {n: {"density": round(_density(model, n), 6), "format": r.format, "weight_bytes": r.weight_bytes,
                        "param_bytes": r.param_bytes, "dense_weight_bytes": r.dense_weight_bytes}
                    for n, r in sizes.layers.items()}
        if h.reached:
            h.message = (f"reached {sizes.total:,} B <= target {h.target_bytes:,} B "
                         f"({h.start_bytes / max(sizes.total, 1):.2f}x smaller), val {h.final_accuracy:.2f}%")
            self.log(h.message)
        model.eval()
        return model, h

    def separate(self, model: Model, limit: int, rank) -> Model:
        """Separate the largest Conv/Linear while one holds more than `limit` bytes."""
        done: set[str] = set()
        while True:
            sizes = self.size(model)
            mods = model.weighted_layers()
            big = [n for n, r in sizes.layers.items() if r.total > limit and n not in done and n in mods
                   and separation.separable(mods[n].layer)]
            if not big:
                return model
            name = max(big, key=lambda n: sizes.layers[n].total)
            done.add(name)
            self.iteration += 1
            backup = copy.deepcopy(model)
            module_name = _module_name(model.float_net, mods[name].layer)
            config = _config_for(model)
            new = separation.separate_in_place(model.float_net, module_name, rank)
            if new is None:
                self.record("separate", name, sizes, self.history.baseline_accuracy, note="no smaller separation")
                continue
            parts = [f"{name}.{k}" for k in range(len(new))]
            model.transform(_split_config(config, name, parts))
            done.update(parts)
            acc = self.train(model, [p for p in model.parameters()], f"separate {name}")
            after = self.size(model)
            shape = "->".join(str(m.weight.shape[0]) for m in new)
            if acc < self.history.baseline_accuracy - self.drop_limit:
                self.record("separate", name, after, acc, parts=parts, reverted=True, note=f"ranks {shape}")
                model = backup
            else:
                self.accepted_acc = acc
                self.record("separate", name, after, acc, parts=parts, note=f"ranks {shape}")

    def prune(self, model: Model) -> tuple[Model, ModelBytes]:
        h = self.history
        fragile: list[str] = []
        spent: set[str] = set()  # layers no density can make smaller
        bar = self.log.bar(desc="shrink", unit="step")
        sizes = self.size(model)
        try:
            while sizes.total > h.target_bytes:
                left = [n for n in sizes.layers if n not in fragile and n not in spent
                        and n in model.weighted_layers()]
                if not left:
                    h.message = self.stop_message(sizes, fragile, spent)
                    self.log(h.message)
                    break
                name = max(left, key=lambda n: (sizes.layers[n].weight_bytes, n))
                self.iteration += 1
                layer = model.weighted_layers()[name]
                good = (_snapshot(model), layer.sparseness, model.layer_configs.get(name))
                density = self.lower_density(model, name, sizes)
                if density is None:
                    spent.add(name)
                    _restore(model, name, good)
                    self.record("prune", name, sizes, self.accepted_acc, density=_density(model, name),
                                note="no smaller encoding")
                    continue
                with torch.no_grad():
                    layer.layer.weight.mul_(layer.weight_mask)
                params = _layer_params(layer) if self.retrain == "layer" else list(model.parameters())
                acc = self.train(model, params, f"retrain {name}")
                new_sizes = self.size(model)
                if acc < h.baseline_accuracy - self.drop_limit:
                    _restore(model, name, good)
                    fragile.append(name)
                    self.record("prune", name, new_sizes, acc, density=density, fragile=True, reverted=True)
                    sizes = self.size(model)
                else:
                    sizes, self.accepted_acc = new_sizes, acc
                    self.record("prune", name, sizes, acc, density=density)
                bar.update(1)
                bar.set_postfix_str(f"{sizes.total:,}/{h.target_bytes:,} B")
        finally:
            bar.close()
        h.fragile = fragile
        return model, sizes

    def lower_density(self, model: Model, name: str, sizes: ModelBytes) -> float | None:
        """Set `name`'s mask to the next density: `step` for a dense layer when that shrinks its
        encoding, else x0.9 until the encoding is at most 90% of what it was (at most max_tries
        tries; the last try is kept if it is smaller at all). None when nothing is smaller."""
        n = model.weighted_layers()[name].weight_mask.numel()
        current = _density(model, name)
        before = sizes.layers[name].weight_bytes
        last = None
        if current >= 1.0:
            set_density(model, name, self.step)
            after = self.layer_bytes(model, name)
            if after < before:
                return self.step
            current = self.step
        d = current
        for _ in range(self.max_tries):
            d *= 0.9
            if round(d * n) < 1:
                break
            set_density(model, name, d)
            after = self.layer_bytes(model, name)
            if after <= 0.9 * before:
                return d
            last = d if after < before else last
        if last is not None:
            set_density(model, name, last)
        return last

    def stop_message(self, sizes: ModelBytes, fragile: list[str], spent: set[str]) -> str:
        parts = []
        if fragile:
            parts.append(f"fragile: {', '.join(fragile)}")
        if spent:
            parts.append(f"no smaller encoding: {', '.join(sorted(spent))}")
        msg = (f"stopped: every remaining layer is fragile ({'; '.join(parts)}); target {self.history.target_bytes:,} B "
               f"not reached, best model is {sizes.total:,} B")
        if self.history.target_bytes < sizes.param_bytes:
            msg += (f" (the target is below the {sizes.param_bytes:,} B of biases and per-channel constants "
                    "alone)")
        return msg


# -- masks and densities -----------------------------------------------------------
def set_density(model: Model, name: str, density: float) -> None:
    """TOPK{density} mask on layer `name`, chosen from its (BatchNorm-folded) weights."""
    layer = model.weighted_layers()[name]
    sp = Sparseness("topk", density=float(density))
    with torch.no_grad():
        w, _ = layer.folded(masked=False)
        layer.weight_mask.copy_(layer.out_major(compute_mask(w, sp)))  # the mask has the layer's weight's shape
    set_label(model, name, density)


def set_label(model: Model, name: str, density: float) -> None:
    """Label layer `name` TOPK{density}: its sparseness (shown by repr, saved in the .pt2's metadata)
    follows its mask."""
    sp = Sparseness("topk", density=float(density))
    model.weighted_layers()[name].sparseness = sp
    if name in model.layer_configs:
        model.layer_configs[name] = replace(model.layer_configs[name], sparseness=sp)


def _restore(model: Model, name: str, good: tuple) -> None:
    """Back to the state before `name`'s density was lowered: weights, masks, ranges and its config."""
    state, sparseness, config = good
    model.load_state_dict(state)
    model.weighted_layers()[name].sparseness = sparseness
    if config is not None:
        model.layer_configs[name] = config


def apply_masks(model: Model) -> None:
    """Zero the pruned weights (optimizer state such as Adam's momentum would move them)."""
    with torch.no_grad():
        for layer in model.weighted_layers().values():
            layer.layer.weight.mul_(layer.weight_mask)


def _density(model: Model, name: str) -> float:
    return float(model.weighted_layers()[name].weight_mask.mean())


def _layer_params(layer: QuantWeighted) -> list[nn.Parameter]:
    ps = list(layer.layer.parameters())
    if layer.bn is not None:
        ps += [p for p in layer.bn.parameters()]
    return ps


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _module_name(root: nn.Module, module: nn.Module) -> str:
    return next(n for n, m in root.named_modules() if m is module)


# -- configs across a separation ------------------------------------------------------
def _config_for(model: Model) -> dict:
    """The settings the model's config gave each layer, as a config mapping."""
    out = {}
    for name, cfg in model.layer_configs.items():
        body = {}
        for key in cfg.set_fields:
            if key == "weight_sparseness":
                body[key] = cfg.sparseness.spelled()
            elif key == "approximation_function":
                body[key] = cfg.approximation.spelled()
            else:
                fmt = getattr(cfg, {"weight_format": "weight", "input_format": "input", "output_format": "output",
                                    "bias_format": "bias"}[key])
                body[key] = fmt.spelled() if fmt is not None else "SAME"
        if body:
            out[name] = body
    return out


def _split_config(config: dict, name: str, parts: list[str]) -> dict:
    """`name`'s settings spread over its factors: input format to the first, output and bias to the last."""
    config = dict(config)
    body = config.pop(name, None)
    if not body:
        return config
    for i, part in enumerate(parts):
        own = {k: v for k, v in body.items() if k in ("weight_format", "weight_sparseness")}
        if i == 0 and "input_format" in body:
            own["input_format"] = body["input_format"]
        if i == len(parts) - 1:
            own.update({k: body[k] for k in ("output_format", "bias_format") if k in body})
        if own:
            config[part] = own
    return config
