"""Empirical bias correction: remove the mean output error of each quantized layer, layer by layer.

Rounding a layer's weights moves its output by conv(x, w_hat - w), and clipped or
rounded activations upstream move its input; on the post-ReLU tensors most layers
see, both have a non-zero mean per output channel, a bias error that the next
layers carry on. At the end of `calibrating()`, once every range is known, the
float network and the fake-quantized one run on the first calibration samples
(at most SAMPLES): the float run records each weighted layer's mean output per
channel, and the quantized run, in graph order, sets each layer's correction to
the float mean minus its own mean before the layer computes its output, so every
layer sees its upstream layers already corrected (Nagel et al. 2019, "Data-Free
Quantization Through Weight Equalization and Bias Correction", section 4.2, in its
empirical form). The correction is added to the float bias before the bias is put
on its int32 grid: the fake-quantized model and the export still agree to the bit. Once the
weights have changed since the first `transform()` (quantization-aware training), calibration keeps
the corrections as they are (training adapted to them; the float net is no longer the target),
and a later `transform()` carries them over by layer name.
An LSTM or GRU corrects its gates from the float inputs its calibration run sees
(compress/recurrent.py). Config key `bias_correction` (default true;
docs/compression.md).
"""
from __future__ import annotations

import torch
from torch import nn

SAMPLES = 64  # calibration samples the correction runs on (the first ones seen)


class SampleStore:
    """The first SAMPLES samples of the batches run while calibrating (each positional tensor argument)."""

    def __init__(self, limit: int = SAMPLES):
        self.limit, self.parts, self.count = limit, [], 0

    def add(self, args: tuple) -> None:
        if self.count >= self.limit or not args or not all(isinstance(a, torch.Tensor) and a.dim() > 0 for a in args):
            return
        take = min(self.limit - self.count, int(args[0].shape[0]))
        if any(int(a.shape[0]) != int(args[0].shape[0]) for a in args):
            return  # arguments without one batch dimension: not sliced
        self.parts.append(tuple(a[:take].detach().clone() for a in args))
        self.count += take

    def batch(self) -> tuple | None:
        if not self.parts:
            return None
        return tuple(torch.cat([p[i] for p in self.parts]) for i in range(len(self.parts[0])))


def weights_fingerprint(net: nn.Module) -> tuple[float, ...]:
    """Sum and sum of squares of every parameter: tells whether the float weights were trained."""
    with torch.no_grad():
        return tuple(v for p in net.parameters() for v in (float(p.double().sum()), float(p.double().pow(2).sum())))


def corrections(body: nn.Module) -> dict[str, torch.Tensor]:
    """Every correction buffer of a built model, by qualified name."""
    return {n: b.detach().clone() for n, b in body.named_buffers() if n.endswith("bias_correction")
            or "_correction_l" in n.rsplit(".", 1)[-1]}


def restore_corrections(body: nn.Module, kept: dict[str, torch.Tensor]) -> None:
    """Copy `kept` into the buffers of the same name and shape (a new transform of the same net)."""
    for n, b in body.named_buffers():
        if n in kept and kept[n].shape == b.shape:
            b.copy_(kept[n])


def sample_means(y: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """[N, C]: each sample's mean per channel (over positions and tokens)."""
    c = y.shape[channel_dim]
    return y.detach().to(torch.float64).movedim(channel_dim, -1).reshape(y.shape[0], -1, c).mean(dim=1)


def shrunk_shift(float_means: torch.Tensor, quant_means: torch.Tensor) -> torch.Tensor:
    """The per-channel bias shift from [N, C] per-sample means of the float and the quantized output:
    their mean difference, shrunk towards 0 by its own standard error (positive-part James-Stein,
    factor max(0, 1 - se^2 / d^2)), so that a channel whose mean error is noise is left alone."""
    d = float_means - quant_means
    mean = d.mean(dim=0)
    n = d.shape[0]
    if n < 2:
        return mean
    se2 = d.var(dim=0, unbiased=True) / n
    return mean * torch.clamp(1 - se2 / mean.pow(2).clamp_min(1e-300), min=0.0)


def float_means(float_net: nn.Module, layers: list, batch: tuple) -> dict[int, torch.Tensor]:
    """Each layer's per-sample mean output per channel ([N, C]) in the float network (the output of
    its BatchNorm when it folds one), keyed by id(layer); a module called more than once is left out."""
    seen: dict[int, list] = {}
    hooks = []
    for layer in layers:
        where = layer.bn if layer.bn is not None else layer.layer

        def hook(_mod, _args, out, key=id(layer), dim=layer.channel_dim):
            seen.setdefault(key, []).append(sample_means(out, dim))

        hooks.append(where.register_forward_hook(hook))
    was_training = float_net.training
    try:
        float_net.eval()
        with torch.no_grad():
            float_net(*batch)
    finally:
        float_net.train(was_training)
        for h in hooks:
            h.remove()
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


def correct(model, layers: list, batch: tuple) -> None:
    """Set the corrections of `layers` (QuantWeighted, correct_bias on) from one float and one
    quantized run of `batch`; layers the float run does not reach keep none."""
    targets = float_means(model.float_net, layers, batch)
    for layer in layers:
        layer.bias_target = targets.get(id(layer))
    try:
        with torch.no_grad():
            model.body(*batch)
    finally:
        for layer in layers:
            layer.bias_target = None
