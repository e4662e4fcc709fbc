"""The smaller layers real models use: pooling options (ceil_mode, count_include_pad), amax / amin,
reflect / replicate padded convolutions, eval-time identities.

Each model's fake-quantized output codes must equal the integer reference's (Model.output_codes
vs dmxgen.api.reference_outputs), on odd sizes and with padding, so the graph ops carry PyTorch's
exact rule (the divisor of a ceil_mode window, which taps count).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmxgen.errors import DmxError

from .conftest import compare, export_and_verify


class Pool(nn.Module):
    """A conv (so the grid is a calibrated one), then the pooling under test, then a conv again."""

    def __init__(self, pool: nn.Module, rank: int = 2, channels: int = 3):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv1d
        self.a, self.pool, self.b = conv(2, channels, 3, padding=1), pool, conv(channels, 2, 1)

    def forward(self, x):
        return self.b(self.pool(torch.relu(self.a(x))))


class FunctionalPool(Pool):
    def __init__(self, fn, rank: int = 2, **kw):
        super().__init__(nn.Identity(), rank)
        self.fn, self.kw = fn, kw

    def forward(self, x):
        return self.b(self.fn(torch.relu(self.a(x)), **self.kw))


def calibrated(net: nn.Module, shape: tuple, config=None, seed: int = 0):
    import dmxgen

    torch.manual_seed(seed)
    x = torch.randn(*shape)
    m = dmxgen.Model(net.eval()).transform(config)
    with m.calibrating():
        m(x)
    return m.eval(), x


def assert_bit_exact(m, x, kinds: set[str] = frozenset()):
    g = m.to_graph(x[:1])
    assert kinds <= {op.kind for op in g.ops}, [op.kind for op in g.ops]
    ref, fq = compare(m, x, g)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"
    return g


# every combination of ceil_mode and count_include_pad, with and without padding, on odd sizes
POOL_OPTIONS = list(itertools.product((False, True), (False, True), (0, 1)))


@pytest.mark.parametrize("ceil, include, pad", POOL_OPTIONS)
@pytest.mark.parametrize("kernel, stride, size", [(3, 2, (8, 7)), (2, 2, (7, 9)), (3, 3, (10, 11))])
def test_avg_pool2d_options_are_bit_exact(ceil, include, pad, kernel, stride, size):
    pool = nn.AvgPool2d(kernel, stride, padding=pad, ceil_mode=ceil, count_include_pad=include)
    m, x = calibrated(Pool(pool), (16, 2) + size)
    g = assert_bit_exact(m, x, {"avg_pool2d"})
    op = next(op for op in g.ops if op.kind == "avg_pool2d")
    assert op.a.divisor == ("window" if include and pad else "valid")


@pytest.mark.parametrize("ceil, pad", list(itertools.product((False, True), (0, 1))))
@pytest.mark.parametrize("kernel, stride, size", [(3, 2, (8, 7)), (2, 2, (7, 9)), (3, 3, (10, 11))])
def test_max_pool2d_ceil_mode_is_bit_exact(ceil, pad, kernel, stride, size):
    m, x = calibrated(Pool(nn.MaxPool2d(kernel, stride, padding=pad, ceil_mode=ceil)), (16, 2) + size)
    assert_bit_exact(m, x, {"max_pool2d"})


@pytest.mark.parametrize("ceil, include, pad", POOL_OPTIONS)
def test_pool1d_options_are_bit_exact(ceil, include, pad):
    avg = nn.AvgPool1d(3, 2, padding=pad, ceil_mode=ceil, count_include_pad=include)
    m, x = calibrated(Pool(avg, rank=1), (16, 2, 10))
    assert_bit_exact(m, x, {"avg_pool2d"})
    m, x = calibrated(Pool(nn.MaxPool1d(3, 2, padding=pad, ceil_mode=ceil), rank=1), (16, 2, 10))
    assert_bit_exact(m, x, {"max_pool2d"})


@pytest.mark.parametrize("fn, kw, rank", [
    (F.avg_pool2d, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, 2),  # counts padding
    (F.avg_pool2d, {"kernel_size": 2, "padding": 1, "count_include_pad": False, "ceil_mode": True}, 2),
    (F.max_pool2d, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, 2),
    (F.avg_pool1d, {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, 1),
    (F.max_pool1d, {"kernel_size": 2, "stride": 2, "ceil_mode": True}, 1),
])
def test_functional_pool_options_are_bit_exact(fn, kw, rank):
    shape = (16, 2, 9, 7) if rank == 2 else (16, 2, 11)
    m, x = calibrated(FunctionalPool(fn, rank, **kw), shape)
    assert_bit_exact(m, x)


def test_ceil_mode_is_extra_bottom_right_padding_left_out_of_the_divisor():
    # 8 rows, k3 s2 p1, ceil: 5 outputs; the last window is rows 7..9: row 7 inside, row 8 padding,
    # row 9 beyond the padded image (the overhang), so PyTorch divides by 2 rows there
    m, x = calibrated(Pool(nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)), (8, 2, 8, 8))
    op = next(op for op in m.to_graph(x[:1]).ops if op.kind == "avg_pool2d")
    assert (op.a.pad, op.a.divisor, op.a.overhang) == ((1, 1, 2, 2), "window", (1, 1))


@pytest.mark.parametrize("pool, message", [
    (nn.MaxPool2d(2, dilation=2), r"layer 'pool': pooling with return_indices or dilation is not supported"),
    (nn.MaxPool2d(2, return_indices=True), r"layer 'pool': pooling with return_indices or dilation"),
    (nn.AvgPool2d(2, divisor_override=3), r"layer 'pool': avg pooling with divisor_override is not supported"),
])
def test_pool_refusals_name_the_layer(pool, message):
    import dmxgen

    with pytest.raises(DmxError, match=message):
        dmxgen.Model(Pool(pool)).transform(None)


# -- identities in eval -------------------------------------------------------------------------
class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth as it is defined there (found by name: torchvision is optional)."""

    def __init__(self, p: float = 0.2, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(1 - self.p)  # data-dependent: no fx
        return x * keep / (1 - self.p)


StochasticDepth.__module__ = "torchvision.ops.stochastic_depth"


class Identities(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 2, 1)
        self.drop = nn.Sequential(nn.AlphaDropout(0.1), nn.FeatureAlphaDropout(0.1), nn.Identity(),
                                  nn.Dropout3d(0.1))
        self.depth = StochasticDepth(0.3)

    def forward(self, x):
        y = self.drop(torch.relu(self.a(x)))
        y = F.alpha_dropout(F.feature_alpha_dropout(F.dropout(y, 0.1, self.training), 0.1, self.training), 0.1,
                            self.training)
        return self.b(self.depth(y))


def test_eval_identities_pass_their_input_through():
    m, x = calibrated(Identities(), (8, 2, 5, 5))
    g = assert_bit_exact(m, x)
    assert [op.kind for op in g.ops] == ["conv2d", "conv2d"]


def test_stochastic_depth_is_one_layer_even_when_traced_in_training():
    import dmxgen

    # traced through, its training branch would be torch.empty(...).bernoulli_(...): refused calls
    m = dmxgen.Model(Identities().train()).transform(None)
    assert ("depth", "StochasticDepth") in [(layer.name, layer.type) for layer in m.layers]


# -- amax / amin / mean over dims ---------------------------------------------------------------
class Reduce(nn.Module):
    """conv -> a reduction given as a function of the activation -> Linear (or a conv, for keepdim)."""

    def __init__(self, reduce, head: nn.Module, rank: int = 2):
        super().__init__()
        self.a = (nn.Conv2d if rank == 2 else nn.Conv1d)(2, 4, 3, padding=1)
        self.reduce, self.head = reduce, head

    def forward(self, x):
        return self.head(self.reduce(torch.relu(self.a(x))))


class Tokens(nn.Module):
    """A plain [N, T, D] tensor reduced over the token dim or the last dim."""

    def __init__(self, reduce, out: int):
        super().__init__()
        self.a, self.reduce, self.head = nn.Linear(6, 6), reduce, nn.Linear(out, 3)

    def forward(self, x):
        return self.head(self.reduce(torch.relu(self.a(x))))


REDUCTIONS = {
    "amax_global": (lambda: Reduce(lambda y: torch.amax(y, dim=(2, 3)), nn.Linear(4, 3)), (16, 2, 5, 7), "max_pool2d"),
    "amax_global_keepdim": (lambda: Reduce(lambda y: y.amax((-2, -1), keepdim=True), nn.Conv2d(4, 3, 1)),
                            (16, 2, 5, 7), "max_pool2d"),
    "amin_global": (lambda: Reduce(lambda y: y.amin(dim=(2, 3)), nn.Linear(4, 3)), (16, 2, 5, 7), "reduce_min"),
    "amin_1d": (lambda: Reduce(lambda y: torch.amin(y, 2), nn.Linear(4, 3), rank=1), (16, 2, 9), "reduce_min"),
    "amax_channels": (lambda: Reduce(lambda y: y.amax(1).flatten(1), nn.Linear(35, 3)), (16, 2, 5, 7),
                      "max_pool2d"),
    "amin_channels_keepdim": (lambda: Reduce(lambda y: torch.amin(y, 1, keepdim=True), nn.Conv2d(1, 3, 1)),
                              (16, 2, 5, 7), "reduce_min"),
    "mean_channels": (lambda: Reduce(lambda y: y.mean(1).flatten(1), nn.Linear(35, 3)), (16, 2, 5, 7),
                      "avg_pool2d"),
    "mean_ncl_channels": (lambda: Reduce(lambda y: y.mean(-2), nn.Linear(9, 3), rank=1), (16, 2, 9), "avg_pool2d"),
    "amax_last": (lambda: Tokens(lambda y: y.amax(-1), 5), (16, 5, 6), "max_pool2d"),
    "amin_tokens": (lambda: Tokens(lambda y: torch.amin(y, dim=1), 6), (16, 5, 6), "reduce_min"),
    "mean_tokens": (lambda: Tokens(lambda y: y.mean(1), 6), (16, 5, 6), "avg_pool2d"),
    "mean_last_keepdim": (lambda: Tokens(lambda y: y.mean(-1, keepdim=True).flatten(1), 5), (16, 5, 6),
                          "avg_pool2d"),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_are_bit_exact(name):
    make, shape, kind = REDUCTIONS[name]
    m, x = calibrated(make(), shape)
    assert_bit_exact(m, x, {kind})


@pytest.mark.parametrize("fn, message", [
    (lambda y: y.amax(0), r"layer 'amax': mean, amax and amin are supported over neighbouring dims, not over the "
                          r"batch dim"),
    (lambda y: torch.amin(y, (1, 3)), r"layer 'amin': mean, amax and amin are supported over neighbouring dims"),
    (lambda y: y.mean((1, 3)), r"layer 'mean': mean, amax and amin are supported over neighbouring dims"),
    (lambda y: torch.amax(y), r"layer 'amax': amax over all dimensions is not supported; give the dims"),
])
def test_reduction_refusals_name_the_layer(fn, message):
    import dmxgen

    with pytest.raises(DmxError, match=message):
        dmxgen.Model(Reduce(fn, nn.Identity())).transform(None)


# -- reflect / replicate padded convolutions ------------------------------------------------------
class MirrorConvs(nn.Module):
    def __init__(self, mode: str, rank: int = 2, padding=1):
        super().__init__()
        conv = nn.Conv2d if rank == 2 else nn.Conv1d
        self.a = conv(2, 4, 3, padding=padding, padding_mode=mode)
        self.b = conv(4, 3, (3 if rank == 1 else (3, 5)), stride=2, padding=(1 if rank == 1 else (1, 2)),
                      padding_mode=mode)
        self.c = conv(3, 3, 3, groups=3, padding=2, padding_mode=mode)  # depthwise, two rows of padding

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("rank, shape, padding", [(2, (16, 2, 9, 11), 1), (2, (16, 2, 8, 7), "same"),
                                                   (1, (16, 2, 13), 1), (1, (16, 2, 12), "same")])
def test_reflect_and_replicate_convs_are_bit_exact(mode, rank, shape, padding):
    m, x = calibrated(MirrorConvs(mode, rank, padding), shape)
    g = assert_bit_exact(m, x, {"mirror_pad"})
    pads = [op for op in g.ops if op.kind == "mirror_pad"]
    assert len(pads) == 3 and {op.a.mirror for op in pads} == {"reflect" if mode == "reflect" else "edge"}
    convs = [op for op in g.ops if op.kind in ("conv2d", "depthwise_conv2d")]
    assert all(op.a.pad == (0, 0, 0, 0) for op in convs)


def test_circular_padding_is_refused_in_one_line():
    import dmxgen

    with pytest.raises(DmxError, match=r"^layer 'a' \(Conv2d\): padding_mode='circular' is not supported, only "
                                       r"'zeros', 'reflect' and 'replicate'$"):
        dmxgen.Model(MirrorConvs("circular")).transform(None)


class Mixed(nn.Module):
    """Every new lowering in one model: reflect / replicate convs, a ceil_mode average that counts
    its padding, a ceil_mode max pool, amin over the channels, amax over the image, an identity."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
        self.avg = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)
        self.b = nn.Conv2d(4, 4, 3, padding=1, padding_mode="replicate")
        self.max = nn.MaxPool2d(2, ceil_mode=True)
        self.c, self.depth, self.head = nn.Conv2d(1, 3, 1), StochasticDepth(), nn.Linear(3, 2)

    def forward(self, x):
        y = self.max(torch.relu(self.b(self.avg(torch.relu(self.a(x))))))
        y = self.depth(torch.relu(self.c(torch.amin(y, 1, keepdim=True))))
        return self.head(y.amax((2, 3)))


def test_mixed_model_exports_and_verifies_through_the_cli(tmp_path):
    from dmxgen.api import save

    m, x = calibrated(Mixed(), (16, 2, 11, 9))
    g = assert_bit_exact(m, x, {"mirror_pad", "avg_pool2d", "max_pool2d", "reduce_min"})
    assert next(op for op in g.ops if op.kind == "avg_pool2d").a.divisor == "window"
    export_and_verify(save(m, tmp_path / "mixed.pt2", x), tmp_path / "c")
