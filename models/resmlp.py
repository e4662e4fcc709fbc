"""ResMLP (Touvron et al. 2021) as PSA-Compress uses it, for tokens of small images.

A patch embedding (a Linear over each token's pixels), then per block a token-mixing
residual branch (a Linear over the token dim between two transposes) and a channel-MLP
residual branch (Linear, activation, Linear), each between per-channel affine layers;
the mean over tokens and a linear classifier. The activation is a parameter: ReLU, or a
learnable per-feature LERP-PSA (dmxgen.compress.psa) that a half-width network trains to
the accuracy of the full one. `distill` trains a student block by block against a teacher.

The images come in as tokens ([N, T, P]: `tokens(images, patch)`), so the model is all
Linear layers and elementwise ops; data prep does the patching.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.compress.psa import LerpPSA


class Affine(nn.Module):
    """alpha * x + beta per channel (ResMLP's replacement for normalization)."""

    def __init__(self, dim: int, init: float = 1.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((dim,), float(init)))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.alpha * x + self.beta


def activation(kind: str, features: int) -> nn.Module:
    """relu, gelu, or lerp_psa (64 points over [-4, 4], started as GELU)."""
    if kind == "relu":
        return nn.ReLU()
    if kind == "gelu":
        return nn.GELU()
    if kind == "lerp_psa":
        return LerpPSA(features, points=64, span=4.0, dim=-1).fit(F.gelu)
    raise ValueError(f"unknown activation {kind!r} (relu, gelu, lerp_psa)")


class Block(nn.Module):
    def __init__(self, tokens: int, dim: int, hidden: int, act: str, layerscale: float = 0.1):
        super().__init__()
        self.pre_token, self.token, self.post_token = Affine(dim), nn.Linear(tokens, tokens), Affine(dim, layerscale)
        self.pre_mlp, self.fc1, self.fc2 = Affine(dim), nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.act, self.post_mlp = activation(act, hidden), Affine(dim, layerscale)

    def forward(self, x):  # [N, T, D]
        x = x + self.post_token(self.token(self.pre_token(x).transpose(1, 2)).transpose(1, 2))
        return x + self.post_mlp(self.fc2(self.act(self.fc1(self.pre_mlp(x)))))


class ResMLP(nn.Module):
    """tokens [N, T, P] -> logits [N, classes]; width D, hidden size of the channel MLP H."""

    def __init__(self, tokens: int = 16, patch: int = 4, dim: int = 32, hidden: int = 64, depth: int = 4,
                 classes: int = 10, act: str = "relu"):
        super().__init__()
        self.embed = nn.Linear(patch, dim)
        self.blocks = nn.ModuleList([Block(tokens, dim, hidden, act) for _ in range(depth)])
        self.norm, self.head = Affine(dim), nn.Linear(dim, classes)

    def hidden_states(self, x) -> list[torch.Tensor]:
        """The input of every block and the last block's output (what `distill` matches)."""
        x = self.embed(x)
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def forward(self, x):
        x = self.norm(self.hidden_states(x)[-1])
        return self.head(x.mean(dim=1))


def tokens(images: np.ndarray, patch: int = 2) -> np.ndarray:
    """[N, H, W] images -> [N, (H/patch)(W/patch), patch*patch] tokens, row-major patches."""
    n, h, w = images.shape
    t = images.reshape(n, h // patch, patch, w // patch, patch).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(t.reshape(n, (h // patch) * (w // patch), patch * patch), dtype=np.float32)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 60, lr: float = 3e-3,
        batch: int = 64, seed: int = 0, loss_fn=None, progress=None) -> nn.Module:
    """Adam with a cosine schedule; `loss_fn(model, xb, yb)` defaults to cross-entropy."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_fn = loss_fn or (lambda m, xb, yb: F.cross_entropy(m(xb), yb))
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(batch):
            opt.zero_grad()
            loss_fn(model, x[idx], y[idx]).backward()
            opt.step()
        sched.step()
        if progress is not None:
            progress()
    return model.eval()


def distill(student: ResMLP, teacher: ResMLP, x: torch.Tensor, y: torch.Tensor, epochs: int = 30,
            temperature: float = 2.0, alpha: float = 0.5, lr: float = 2e-3, seed: int = 0) -> ResMLP:
    """Knowledge distillation in two stages: the blocks' hidden states (MSE to the teacher's,
    which needs the same width D), then the logits (soft cross-entropy at `temperature`,
    mixed with the labels' cross-entropy by `alpha`)."""
    teacher.eval()
    with torch.no_grad():
        states, logits = teacher.hidden_states(x), teacher(x)

    def blockwise(out_states, idx, out, yb):
        return sum(F.mse_loss(a, b[idx]) for a, b in zip(out_states, states))

    def soft_ce(out_states, idx, out, yb):
        kd = F.kl_div(F.log_softmax(out / temperature, -1), F.softmax(logits[idx] / temperature, -1),
                      reduction="batchmean") * temperature ** 2
        return alpha * kd + (1 - alpha) * F.cross_entropy(out, yb)

    g = torch.Generator().manual_seed(seed)
    for loss in (blockwise, soft_ce):
        opt = torch.optim.Adam(student.parameters(), lr=lr)
        student.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=g).split(64):
                opt.zero_grad()
                hidden = student.hidden_states(x[idx])
                out = student.head(student.norm(hidden[-1]).mean(dim=1))
                loss(hidden, idx, out, y[idx]).backward()
                opt.step()
    return student.eval()


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())
