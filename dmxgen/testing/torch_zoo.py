"""The PyTorch models a user tries first, at tiny widths, for tests and tools/bench_torch_zoo.py.

Written from the papers and torchvision's definitions (torchvision is not needed):
the same block structure (inverted residuals, squeeze-excitation gated by
hardsigmoid or sigmoid, hardswish, in-place activations, channel shuffle, fire
modules with ceil_mode pooling, stochastic-depth identities, ...) at width
multipliers near 0.25 and inputs of 32x32 or less, so that one export takes
seconds. `ZOO` maps a name to (builder, input shape without the batch dim);
adding a model is one line there. Every builder returns a float net in eval mode
with seeded weights and BatchNorm statistics that are not the identity.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def _div8(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of 8, never below 90% of v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=None) -> nn.Sequential:
    """Conv2d (no bias), BatchNorm2d, optional activation: torchvision's Conv2dNormActivation."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act is not None else nn.Sequential(*layers)


def relu():
    return nn.ReLU(inplace=True)


def relu6():
    return nn.ReLU6(inplace=True)


def hardswish():
    return nn.Hardswish(inplace=True)


def silu():
    return nn.SiLU(inplace=True)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: global pool, 1x1 conv, act, 1x1 conv, gate, scale."""

    def __init__(self, c: int, squeeze: int, act=relu, gate=lambda: nn.Hardsigmoid(inplace=True)):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
        self.activation, self.scale_activation = act(), gate()

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth("row"): drops the residual branch per sample while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty([x.shape[0]] + [1] * (x.dim() - 1), dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class InvertedResidual(nn.Module):
    """MobileNetV2 / V3 bneck / EfficientNet MBConv / MNASNet: expand 1x1, depthwise kxk,
    optional SE, linear 1x1 projection, residual when the shape allows (through stochastic depth)."""

    def __init__(self, cin, expanded, cout, k, stride, act, se=None, drop: float | None = None):
        super().__init__()
        layers = [conv_bn(cin, expanded, 1, act=act)] if expanded != cin else []
        layers.append(conv_bn(expanded, expanded, k, stride, groups=expanded, act=act))
        if se is not None:
            layers.append(se(expanded))
        layers.append(conv_bn(expanded, cout, 1))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout
        self.stochastic_depth = StochasticDepth(drop) if drop is not None else nn.Identity()

    def forward(self, x):
        y = self.block(x)
        return x + self.stochastic_depth(y) if self.use_res else y


def _classifier(features: nn.Module, c: int, hidden: int | None, classes: int, act=hardswish) -> nn.Sequential:
    head = [nn.Linear(c, hidden), act(), nn.Dropout(0.2, inplace=True), nn.Linear(hidden, classes)] if hidden \
        else [nn.Dropout(0.2), nn.Linear(c, classes)]
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Sequential(*head))


def mobilenet_v2(width: float = 0.25, classes: int = 10) -> nn.Module:
    """Sandler et al. 2018: ReLU6 inverted residuals (t, c, n, s), the first stages of the paper's table."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 1, 2), (6, 96, 1, 1)]
    c = _div8(32 * width)
    layers = [conv_bn(3, c, 3, 2, act=relu6)]
    for t, ch, n, s in settings:
        out = _div8(ch * width)
        for i in range(n):
            layers.append(InvertedResidual(c, c * t, out, 3, s if i == 0 else 1, relu6))
            c = out
    last = 64
    layers.append(conv_bn(c, last, 1, act=relu6))
    return _classifier(nn.Sequential(*layers), last, None, classes)


def mobilenet_v3_small(width: float = 0.25, classes: int = 10) -> nn.Module:
    """Howard et al. 2019, the small model's bnecks (k, exp, out, SE, act, s), first six of eleven."""
    def se(ch):
        return SqueezeExcitation(ch, _div8(ch // 4))

    rows = [(3, 16, 16, True, relu, 2), (3, 72, 24, False, relu, 2), (3, 88, 24, False, relu, 1),
            (5, 96, 40, True, hardswish, 2), (5, 240, 40, True, hardswish, 1), (5, 120, 48, True, hardswish, 1)]
    c = _div8(16 * width)
    layers = [conv_bn(3, c, 3, 2, act=hardswish)]
    for k, exp, out, use_se, act, s in rows:
        exp, out = _div8(exp * width), _div8(out * width)
        layers.append(InvertedResidual(c, exp, out, k, s, act, se if use_se else None))
        c = out
    last = 6 * c
    layers.append(conv_bn(c, last, 1, act=hardswish))
    return _classifier(nn.Sequential(*layers), last, 32, classes)


def efficientnet_b0(width: float = 0.25, classes: int = 10) -> nn.Module:
    """Tan & Le 2019: MBConv with SiLU, SE of a quarter of the block's input gated by sigmoid,
    stochastic depth on the residuals; the first three stages of B0."""
    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2)]  # expand, k, stride, out, repeats
    c = _div8(32 * width)
    layers, blocks, b = [conv_bn(3, c, 3, 2, act=silu)], sum(s[-1] for s in stages), 0
    for t, k, s, ch, n in stages:
        out = _div8(ch * width)
        for i in range(n):
            squeeze = max(1, c // 4)
            layers.append(InvertedResidual(c, c * t, out, k, s if i == 0 else 1, silu,
                                           lambda e, q=squeeze: SqueezeExcitation(e, q, silu, nn.Sigmoid),
                                           drop=0.2 * b / blocks))
            c, b = out, b + 1
    last = 4 * c
    layers.append(conv_bn(c, last, 1, act=silu))
    return _classifier(nn.Sequential(*layers), last, None, classes)


class BasicBlock(nn.Module):
    """He et al. 2016: two 3x3 conv-BN, the identity or a strided 1x1 conv-BN shortcut, ReLU after the add."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """torchvision's resnet18 (7x7 stem, 3x3 max pool, four stages of two BasicBlocks) at base width 8."""

    def __init__(self, base: int = 8, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, c = [], base
        for i in range(4):
            out = base * 2 ** i
            stages.append(nn.Sequential(BasicBlock(c, out, 1 if i == 0 else 2), BasicBlock(out, out, 1)))
            c = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Fire(nn.Module):
    """Iandola et al. 2016: squeeze 1x1, then expand 1x1 and 3x3 concatenated, ReLU everywhere."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze, self.squeeze_activation = nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True)
        self.expand1x1, self.expand1x1_activation = nn.Conv2d(squeeze, e1, 1), nn.ReLU(inplace=True)
        self.expand3x3, self.expand3x3_activation = nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def squeezenet1_1(width: float = 0.25, classes: int = 10) -> nn.Module:
    """SqueezeNet 1.1: 3x3 stem, ceil_mode max pools between fire pairs, a 1x1 conv classifier."""
    def w(c):
        return max(4, int(c * width))

    features = nn.Sequential(
        nn.Conv2d(3, w(64), 3, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(w(64), w(16), w(64), w(64)), Fire(w(128), w(16), w(64), w(64)), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(w(128), w(32), w(128), w(128)), Fire(w(256), w(32), w(128), w(128)))
    classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(w(256), classes, 1), nn.ReLU(inplace=True),
                               nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(features, classifier, nn.Flatten(1))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's: [N, g*c, H, W] -> view [N, g, c, H, W], swap g and c, flatten back."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet V2 (Ma et al. 2018): split / two branches of 1x1, depthwise 3x3, 1x1; cat; shuffle."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, half = stride, cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, half, 1, act=relu))
        bin_ = cin if stride > 1 else half
        self.branch2 = nn.Sequential(conv_bn(bin_, half, 1, act=relu), conv_bn(half, half, 3, stride, groups=half),
                                     conv_bn(half, half, 1, act=relu))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


def shufflenet_v2(classes: int = 10) -> nn.Module:
    """ShuffleNet V2 x0.5's layout at a quarter of its channels: stem, max pool, three stages, 1x1 conv."""
    chans, repeats = [8, 16, 32, 64], [2, 2, 1]
    layers, c = [conv_bn(3, chans[0], 3, 2, act=relu), nn.MaxPool2d(3, 2, 1)], chans[0]
    for out, n in zip(chans[1:], repeats):
        layers += [ShuffleUnit(c, out, 2)] + [ShuffleUnit(out, out, 1) for _ in range(n - 1)]
        c = out
    layers.append(conv_bn(c, 64, 1, act=relu))
    return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(64, classes))


def mnasnet(width: float = 0.25, classes: int = 10) -> nn.Module:
    """MNASNet-A / torchvision mnasnet: stem conv, depthwise separable conv, then ReLU inverted
    residual stacks (expansion 3 and 6, kernels 3 and 5), 1x1 conv to 1280 (here 64), dropout, Linear."""
    d = [_div8(c * width) for c in (32, 16, 24, 40, 80)]
    layers = [conv_bn(3, d[0], 3, 2, act=relu), conv_bn(d[0], d[0], 3, groups=d[0], act=relu), conv_bn(d[0], d[1], 1)]
    c = d[1]
    for out, k, s, t, n in [(d[2], 3, 2, 3, 2), (d[3], 5, 2, 3, 2), (d[4], 5, 2, 6, 1)]:
        for i in range(n):
            layers.append(InvertedResidual(c, c * t, out, k, s if i == 0 else 1, relu))
            c = out
    layers.append(conv_bn(c, 64, 1, act=relu))
    return _classifier(nn.Sequential(*layers), 64, None, classes)


def ds_cnn(channels: int = 16, blocks: int = 4, classes: int = 12) -> nn.Module:
    """Zhang et al. 2017 (Hello Edge) DS-CNN on 49x10 MFCCs: 10x4 stride-2 conv, then depthwise
    3x3 + pointwise 1x1 pairs (BN, ReLU), average pool, Linear: MLPerf Tiny's KWS model, narrower."""
    layers = [nn.Conv2d(1, channels, (10, 4), 2, (5, 1), bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
              nn.Dropout(0.2)]
    for _ in range(blocks):
        layers += [conv_bn(channels, channels, 3, groups=channels, act=relu), conv_bn(channels, channels, 1, act=relu)]
    return nn.Sequential(*layers, nn.Dropout(0.4), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, classes))


def resmlp(classes: int = 10) -> nn.Module:
    """models/resmlp.py's ResMLP (token mixing, channel MLP, affine layers): 16 tokens of 4 values."""
    try:
        from models.resmlp import ResMLP
    except ImportError:  # the repository's models/ package beside dmxgen/
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from models.resmlp import ResMLP
    return ResMLP(tokens=16, patch=4, dim=16, hidden=32, depth=2, act="relu", classes=classes)


class UNet(nn.Module):
    """Ronneberger et al. 2015, three levels: double 3x3 conv-BN-ReLU, max pool down; up by a
    ConvTranspose2d, a bilinear and a nearest nn.Upsample; skip connections concatenated."""

    def __init__(self, cin: int = 3, base: int = 8, classes: int = 2):
        super().__init__()

        def double(a, b):
            return nn.Sequential(conv_bn(a, b, 3, act=relu), conv_bn(b, b, 3, act=relu))

        self.enc1, self.enc2, self.enc3 = double(cin, base), double(base, 2 * base), double(2 * base, 2 * base)
        self.pool = nn.MaxPool2d(2)
        self.bottom = double(2 * base, 4 * base)
        self.up3 = nn.ConvTranspose2d(4 * base, 2 * base, 2, stride=2)
        self.dec3 = double(4 * base, 2 * base)
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                 nn.Conv2d(2 * base, 2 * base, 1))
        self.dec2 = double(4 * base, base)
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec1 = double(2 * base, base)
        self.head = nn.Conv2d(base, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        b = self.bottom(self.pool(e3))
        d3 = self.dec3(torch.cat([self.up3(b), e3], 1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


class TokenTransformer(nn.Module):
    """Vaswani et al. 2017's encoder block as a classifier: 16 tokens of 16 values through one
    nn.TransformerEncoderLayer (batch_first, post-norm, ReLU, 2 heads), the mean over the tokens, Linear."""

    def __init__(self, d: int = 16, heads: int = 2, ff: int = 32, classes: int = 10):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.1, batch_first=True)
        self.head = nn.Linear(d, classes)
        with torch.no_grad():  # LayerNorm away from its trivial init (1, 0), so the export sees it
            for norm in (self.encoder.norm1, self.encoder.norm2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0, 0.2)

    def forward(self, x):
        return self.head(self.encoder(x).mean(dim=1))


class KeywordRNN(nn.Module):
    """Keyword spotting on 49 frames of 10 MFCCs (Hello Edge's input) with a recurrent layer:
    nn.LSTM or nn.GRU(10, 32, batch_first), its output at the last step, Linear to 12 classes."""

    def __init__(self, cell=nn.LSTM, hidden: int = 32, classes: int = 12):
        super().__init__()
        self.rnn = cell(10, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def kws_lstm() -> nn.Module:
    return KeywordRNN(nn.LSTM)


def kws_gru() -> nn.Module:
    return KeywordRNN(nn.GRU)


def seeded(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and affine terms (so folding matters), eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return net.eval()


def _built(make):
    def build(seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return seeded(make(), seed)

    build.__name__ = getattr(make, "__name__", "build")
    return build


ZOO: dict[str, tuple] = {
    "mobilenet_v2": (_built(mobilenet_v2), (3, 32, 32)),
    "mobilenet_v3_small": (_built(mobilenet_v3_small), (3, 32, 32)),
    "efficientnet_b0": (_built(efficientnet_b0), (3, 32, 32)),
    "resnet18": (_built(ResNet18), (3, 32, 32)),
    "squeezenet1_1": (_built(squeezenet1_1), (3, 32, 32)),
    "shufflenet_v2": (_built(shufflenet_v2), (3, 32, 32)),
    "mnasnet": (_built(mnasnet), (3, 32, 32)),
    "ds_cnn": (_built(ds_cnn), (1, 49, 10)),
    "resmlp": (_built(resmlp), (16, 4)),
    "unet": (_built(UNet), (3, 16, 16)),
    "transformer": (_built(TokenTransformer), (16, 16)),
    "kws_lstm": (_built(kws_lstm), (49, 10)),
    "kws_gru": (_built(kws_gru), (49, 10)),
}


def inputs(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """n seeded inputs for ZOO[name]: smooth random images (a low-resolution field upsampled plus
    a little noise), closer to real data than white noise; plain randn for token inputs."""
    shape = ZOO[name][1]
    g = torch.Generator().manual_seed(seed)
    if len(shape) != 3:
        return torch.randn(n, *shape, generator=g)
    c, h, w = shape
    coarse = torch.randn(n, c, max(1, h // 4), max(1, w // 4), generator=g)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return smooth + 0.3 * torch.randn(n, c, h, w, generator=g)


def config(net: nn.Module, density: float = 0.5) -> dict:
    """INT8 per-channel weights and TOPK{density} on every Conv2d, ConvTranspose2d and Linear the net has (a config
    selector that matches no layer is an error, so only the types present are named)."""
    rule = {"weight_format": "INT8(PER_CHANNEL)", "weight_sparseness": f"TOPK{{{density}}}"}
    types = {type(m) for m in net.modules()}
    return {f"type:{t.__name__}": dict(rule) for t in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) if t in types}
