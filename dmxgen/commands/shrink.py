"""`dmxgen shrink`: compress a PyTorch model to a target size (dmxgen.compress_to_size)."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from ..codecs import policy as storage_policy
from ..errors import DmxError
from .common import table

ROOT = Path(__file__).resolve().parents[2]  # the source tree, where models/ (the digits example) lives


def digits_loaders(data, batch_size: int = 64, seed: int = 0):
    """(train, test) DataLoaders over models.lenet.Digits; the training order is seeded."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    test = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=256)
    return train, test


def lenet_module():
    """models.lenet from the source tree (it is not part of the installed package)."""
    try:
        return importlib.import_module("models.lenet")
    except ModuleNotFoundError:
        if not (ROOT / "models" / "lenet.py").exists():
            raise DmxError("the digits example needs models/lenet.py from the dmxgen source tree; "
                           "give your own model with --entry module:function") from None
        sys.path.insert(0, str(ROOT))
        return importlib.import_module("models.lenet")


def digits_example(seed: int, float_epochs: int):
    """LeNet trained in float on scikit-learn's digits, with its loaders."""
    try:
        lenet = lenet_module()
        data = lenet.digits_data(seed)
    except ImportError as e:
        raise DmxError(f"the digits example needs scikit-learn ({e})") from None
    net = lenet.train_float(data, epochs=float_epochs, seed=seed)
    return (net, *digits_loaders(data, seed=seed))


def load_entry(spec: str):
    """Call `module:function` (imported with the current folder on sys.path); check what it returns."""
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise DmxError(f"--entry {spec!r}: expected module:function, e.g. mypackage.train:build")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise DmxError(f"--entry {spec!r}: cannot import {mod_name!r} ({e})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise DmxError(f"--entry {spec!r}: {mod_name!r} has no function {fn_name!r}")
    got = fn()
    if not isinstance(got, (tuple, list)) or len(got) not in (3, 4):
        n = len(got) if isinstance(got, (tuple, list)) else type(got).__name__
        raise DmxError(f"--entry {spec!r} returned {n}; expected (model, train_loader, test_loader[, val_loader])")
    return tuple(got) + (None,) * (4 - len(got))


def _first_input(loader):
    batch = next(iter(loader))
    return batch[0][:1].cpu()


@click.command("shrink")
@click.option("--example", type=click.Choice(["digits"]), default="digits", show_default=True,
              help="Bundled example used when --entry is not given: LeNet on scikit-learn's digits.")
@click.option("--entry", metavar="MODULE:FUNCTION",
              help="Your model: a function returning (model, train_loader, test_loader[, val_loader]); "
                   "model is a trained nn.Module or a transformed dmxgen.Model.")
@click.option("--target-kb", required=True, type=click.FloatRange(min=0, min_open=True),
              help="Target size in kB (1000 B): weight bytes plus bias and per-channel constants of every "
                   "Conv/Linear, as `dmxgen export --format STORAGE` writes them.")
@click.option("--storage", type=click.Choice(list(storage_policy.FORMATS)), default=storage_policy.EXPORT.fmt,
              show_default=True, help="Weight storage the size is counted in (export with the same --format).")
@click.option("--min-sparsity", default=storage_policy.EXPORT.min_sparsity, show_default=True,
              type=click.FloatRange(0.0, 1.0),
              help="As `dmxgen export --min-sparsity` (csr/dcsr layers with fewer zeros stay dense).")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=0),
              help="Retraining epochs per step.")
@click.option("--lr", default=1e-3, show_default=True, type=float, help="Adam learning rate for retraining.")
@click.option("--step", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Density a dense layer is first pruned to.")
@click.option("--drop-limit", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="A layer is fragile when validation accuracy falls more than this many points.")
@click.option("--retrain", type=click.Choice(["layer", "all"]), default="layer", show_default=True,
              help="Retrain only the pruned layer (the paper) or every layer.")
@click.option("--separate/--no-separate", default=True, show_default=True,
              help="Separate (SVD / Tucker-2) layers larger than --separation-kb first.")
@click.option("--separation-kb", default=80.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--float-epochs", default=20, show_default=True, type=click.IntRange(min=1),
              help="Digits example: float training epochs.")
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--out", default="build/shrink", show_default=True, type=click.Path(file_okay=False),
              help="Folder for model.pt2 (dmxgen export reads it) and history.json.")
@click.option("--quiet", is_flag=True, help="No per-step log lines or progress bars.")
def command(example, entry, target_kb, storage, min_sparsity, epochs, lr, step, drop_limit, retrain, separate,
            separation_kb, float_epochs, seed, out, quiet):
    """Prune (and separate) a trained model until its exported Conv/Linear bytes fit --target-kb,
    retraining after every step (SparseComp's loop, docs/compression.md).

    \b
    Examples:
      dmxgen shrink --target-kb 2.8 --storage dcsr          the digits example
      dmxgen shrink --entry mynet.train:build --target-kb 100
      dmxgen export build/shrink/model.pt2 --format dcsr -o build/shrink/c

    Exits 0 when the target is reached, 1 when every layer became fragile first
    (the best model found is still written)."""
    import torch

    from ..api import save
    from ..compress.sparsecomp import compress_to_size

    torch.manual_seed(seed)
    if entry:
        model, train_loader, test_loader, val_loader = load_entry(entry)
    else:
        model, train_loader, test_loader = digits_example(seed, float_epochs)
        val_loader = None
    shrunk, history = compress_to_size(
        model, target_kb, train_loader, test_loader, val_loader, epochs=epochs, lr=lr, step=step,
        accuracy_drop_limit=drop_limit, separate_layers=separate, storage=storage, min_sparsity=min_sparsity,
        separation_kb=separation_kb, retrain=retrain, seed=seed, log=False if quiet else None)
    if _rank() != 0:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pt2 = save(shrunk, out / "model.pt2", _first_input(train_loader))
    history.save(out / "history.json")
    click.echo(summary(history, entry or example))
    click.echo(f"wrote {pt2} and {out / 'history.json'}; next: dmxgen export {pt2} --format {storage} "
               f"-o {out / 'c'}")
    if not history.reached:
        sys.exit(1)


def summary(history, what: str) -> str:
    """One screen: per-layer density, format and bytes; totals vs target; accuracies."""
    rows = [[name, f"{100 * r['density']:.1f}%", r["format"], f"{r['weight_bytes']:,}", f"{r['param_bytes']:,}",
             f"{r['dense_weight_bytes']:,}"] for name, r in history.layers.items()]
    lines = [table(rows, ["layer", "density", "format", "weight B", "param B", "dense int8 B"]), ""]
    dense = sum(r["dense_weight_bytes"] for r in history.layers.values())
    weights = sum(r["weight_bytes"] for r in history.layers.values())
    lines.append(f"{what}: {history.start_bytes:,} B -> {history.final_bytes:,} B (target {history.target_bytes:,} B, "
                 f"{history.storage}); weights {weights:,} B = {dense / max(weights, 1):.2f}x below dense int8")
    acc = f"validation accuracy {history.baseline_accuracy:.2f}% -> {history.final_accuracy:.2f}%"
    if history.test_accuracy is not None:
        acc += f"; test {history.baseline_test_accuracy:.2f}% -> {history.test_accuracy:.2f}%"
    lines.append(acc)
    if history.fragile:
        lines.append(f"fragile layers: {', '.join(history.fragile)}")
    lines.append(history.message)
    return "\n".join(lines)


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
