"""LeNet for scikit-learn's 8x8 digits, and the recipe that compresses it.

Used by tools/train_digits.py (`make demo`) and tests/torch. Everything is
seeded and runs on CPU in seconds: the digits data ships inside
scikit-learn, nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONFIG = str(Path(__file__).with_name("lenet_config.yaml"))


class LeNet(nn.Module):
    """Two conv blocks (conv, BatchNorm, ReLU, max pool) and two fully connected layers."""

    def __init__(self, classes: int = 10, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * width * 2 * 2, 64)
        self.fc2 = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))   # 8x8 -> 4x4
        x = self.pool(F.relu(self.bn2(self.conv2(x))))   # 4x4 -> 2x2
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


@dataclass
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def digits_data(seed: int = 0) -> Digits:
    """scikit-learn's digits as [N, 1, 8, 8] floats in [0, 1]; a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.2, random_state=seed, stratify=d.target)
    return Digits(torch.from_numpy(xtr), torch.from_numpy(ytr).long(), torch.from_numpy(xte),
                  torch.from_numpy(yte).long())


def fit(model: nn.Module, data: Digits, epochs: int, lr: float, seed: int = 0, batch: int = 64) -> None:
    """Plain Adam training loop (the same one trains the float and the compressed model)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    model.train()
    n = len(data.x_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train_float(data: Digits, epochs: int = 20, seed: int = 0) -> LeNet:
    torch.manual_seed(seed)
    net = LeNet()
    fit(net, data, epochs, lr=1e-2, seed=seed)
    return net


def compress(net: nn.Module, data: Digits, config=CONFIG, epochs: int = 10, seed: int = 0,
             steps: tuple[float, ...] = (0.4, 0.2)):
    """Prune and quantize per `config`, fine-tuning with fake quantization; recalibrate at the end.

    TOPK densities are reached gradually: each of `steps` (kept fractions,
    larger than the config's) gets `epochs` of fine-tuning first, with the
    pruned weights zeroed before the next, smaller mask is chosen.
    """
    from dmxgen.api import Model

    torch.manual_seed(seed)
    model = Model(net)
    for density in (*steps, None):
        model.transform(config if density is None else _relaxed(config, density))
        with model.calibrating():
            model(data.x_train)
        if epochs:
            fit(model, data, epochs, lr=1e-2, seed=seed)
        with torch.no_grad():
            for layer in model.weighted_layers().values():
                layer.layer.weight.mul_(layer.weight_mask)
    with model.calibrating():
        model(data.x_train)
    model.eval()
    return model


def _relaxed(config, density: float) -> dict:
    """The config with every TOPK{d} replaced by TOPK{max(d, density)}."""
    import re

    import yaml

    with open(config) as f:
        cfg = yaml.safe_load(f) or {}
    out = {}
    for key, body in cfg.items():
        body = dict(body or {})
        sp = str(body.get("weight_sparseness", ""))
        m = re.fullmatch(r"\s*TOPK\{([0-9.eE+-]+)\}\s*", sp, flags=re.I)
        if m:
            body["weight_sparseness"] = f"TOPK{{{max(float(m.group(1)), density)}}}"
        out[key] = body
    return out
