"""Loaders for compress_to_size: (inputs, labels) batches on a device, and a validation split
that keeps the loader's kind (so DistributedSampler ranks stay disjoint)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import DmxError


def device_of(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the loop runs there unless told otherwise)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def batches(loader, device: torch.device):
    """(inputs, labels) of every batch, on `device`."""
    for batch in loader:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise DmxError("compress_to_size: loaders must yield (inputs, labels) batches")
        yield batch[0].to(device), batch[1].to(device)


def set_epoch(loader, epoch: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def split_loader(loader, fraction: float, seed: int = 0):
    """(train, validation) loaders: a fixed random `fraction` of the training samples held out.

    A DataLoader keeps its batch size, workers, collate_fn and sampler kind
    (a DistributedSampler is rebuilt on each part, so ranks stay disjoint); any other
    iterable of batches gives every k-th batch to validation.
    """
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

    if not 0.0 < fraction < 1.0:
        raise DmxError(f"val_fraction must be in (0, 1), got {fraction}")
    if isinstance(loader, DataLoader) and loader.batch_size is not None and hasattr(loader.dataset, "__len__"):
        n = len(loader.dataset)
        k = max(1, int(round(n * fraction)))
        if n - k < 1:
            raise DmxError(f"the training data has {n} samples: too few to hold out a validation split")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        sampler = loader.sampler

        def part(idx, train: bool):
            sub = Subset(loader.dataset, idx)
            common = {"batch_size": loader.batch_size, "num_workers": loader.num_workers,
                      "collate_fn": loader.collate_fn, "drop_last": loader.drop_last and train}
            if isinstance(sampler, DistributedSampler):
                s = DistributedSampler(sub, num_replicas=sampler.num_replicas, rank=sampler.rank,
                                       shuffle=train and sampler.shuffle, seed=sampler.seed)
                return DataLoader(sub, sampler=s, **common)
            shuffle = train and isinstance(sampler, RandomSampler)
            gen = loader.generator if loader.generator is not None else torch.Generator().manual_seed(seed)
            return DataLoader(sub, shuffle=shuffle, generator=gen if shuffle else None, **common)

        return part(order[k:], True), part(order[:k], False)
    items = list(loader)
    every = max(2, int(round(1.0 / fraction)))
    val = items[every - 1::every]
    if not val or len(val) == len(items):
        raise DmxError(f"the training loader has {len(items)} batches: too few to hold out a validation split")
    train = [b for i, b in enumerate(items) if i % every != every - 1]
    return train, val
