"""A three-conv LeNet for the 8x8 digits with two early exits, and the recipe that trains it.

Used by tools/train_digits_ee.py and tests/torch/test_early_exit_digits.py. The
backbone is deep enough for exits to save work: exiting after the first conv
block costs under 4% of the full model's MACs, after the second about a third.
The recipe is the original early-exit method: train the backbone, then the
heads with the backbone frozen, quantize everything to INT8, and choose the
thresholds on a validation split carved out of the training images (the test
images are never looked at).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import lenet

EXITS = ("pool1", "pool2")


class DeepLeNet(nn.Module):
    """Three conv blocks (conv, BatchNorm, ReLU; max pool after the first two) and two FC layers.

    The first block is narrow (`stem` channels): cheap to exit after; its head (a linear classifier
    on the features averaged to 2 x 2) is right on most digits but far from all, so the threshold
    decides which ones leave there."""

    def __init__(self, classes: int = 10, stem: int = 8, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, stem, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(stem)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(stem, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.fc1 = nn.Linear(4 * width * 2 * 2, 64)
        self.fc2 = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))  # 8x8 -> 4x4: exit 0 reads this
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))  # 4x4 -> 2x2: exit 1 reads this
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def heads(classes: int = 10, stem: int = 8, width: int = 16) -> dict[str, nn.Module]:
    """One linear classifier per exit on the flattened features, averaged down to 2 x 2 for the first."""
    return {"pool1": nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(stem * 2 * 2, classes)),
            "pool2": nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 2 * 2, classes))}


@dataclass
class Split:
    """The digits training images split again: `train` fits the weights, `val` chooses thresholds."""

    train: lenet.Digits  # x_train/y_train: the fitting part; x_test/y_test: the real test set
    x_val: torch.Tensor
    y_val: torch.Tensor


def split(data: lenet.Digits, seed: int = 0, val_fraction: float = 0.2) -> Split:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data.x_train))
    fit_idx, val_idx = train_test_split(idx, test_size=val_fraction, random_state=seed,
                                        stratify=data.y_train.numpy())
    fit_idx, val_idx = torch.from_numpy(np.sort(fit_idx)), torch.from_numpy(np.sort(val_idx))
    train = lenet.Digits(data.x_train[fit_idx], data.y_train[fit_idx], data.x_test, data.y_test)
    return Split(train, data.x_train[val_idx], data.y_train[val_idx])


def batches(x: torch.Tensor, y: torch.Tensor, size: int = 64, seed: int | None = 0) -> list:
    """(x, y) batches, shuffled with `seed` (None: in order)."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)) if seed is not None \
        else torch.arange(len(x))
    return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, len(x), size)]


def train_early_exit(s: Split, epochs: int = 20, head_epochs: int = 10, seed: int = 0, policy: str = "margin"):
    """The float backbone, then the heads with the backbone frozen, then INT8 and calibration.

    Returns the calibrated EarlyExit (thresholds not chosen yet: its policy never exits)."""
    return quantize(train_float(s, epochs, head_epochs, seed, policy), s)


def train_float(s: Split, epochs: int = 20, head_epochs: int = 10, seed: int = 0, policy: str = "margin"):
    """The float EarlyExit: the backbone trained, then its heads with the backbone frozen."""
    from dmxgen import EarlyExit, train_exits  # through dmxgen: loads the torch frontend to_graph needs

    torch.manual_seed(seed)
    backbone = DeepLeNet()
    lenet.fit(backbone, s.train, epochs, lr=1e-2, seed=seed)
    ee = EarlyExit(backbone, heads(), policy=policy, example_input=s.train.x_train[:1])
    train_exits(ee, batches(s.train.x_train, s.train.y_train, seed=seed), epochs=head_epochs, lr=1e-2,
                freeze_backbone=True, seed=seed)
    return ee


def quantize(ee, s: Split):
    """INT8 weights per channel and activations per tensor, heads included, calibrated on s's fitting images."""
    ee.transform(None)
    with ee.calibrating():
        ee(s.train.x_train)
    ee.eval()
    return ee
