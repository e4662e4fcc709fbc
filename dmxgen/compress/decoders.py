"""Decoder layers: ConvTranspose2d (the transpose_conv op) and Upsample / F.interpolate (resize_nearest,
resize_bilinear), fake-quantized so that their eval codes are the integer kernels' codes.

ConvTranspose2d is a QuantWeighted whose weight is [Cin, Cout, kh, kw]: its mask, BatchNorm folding
and per-channel scales work on the [Cout, Cin, kh, kw] view (`out_major`), and the integer forward is
conv_transpose2d on the codes in float64 (exact sums). A resize keeps its input's grid; its eval
forward runs the integer algorithm itself, with the index tables and the interpolation of
dmxgen/ops/resize_*.py (one implementation, run on torch tensors here and on numpy by the
reference), and torch's float resize as the straight-through gradient for training.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import DmxError
from ..ops.resize_bilinear import bilinear_tables, interpolate
from ..ops.resize_nearest import gather_nearest, nearest_tables
from .layers import QuantWeighted, _HasInputs
from .quant import ste

RESIZE_FUNCS = {F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear}
# torch mode (and align_corners) -> (op kind, align_corners, half_pixel_centers) of TFLite's kernels
_MODES = {("nearest", False): ("resize_nearest", 0, 0), ("nearest-exact", False): ("resize_nearest", 0, 1),
          ("bilinear", True): ("resize_bilinear", 1, 0), ("bilinear", False): ("resize_bilinear", 0, 1)}


class QuantTransposeConv(QuantWeighted):
    """nn.ConvTranspose2d (groups 1, dilation 1) with QuantWeighted's BatchNorm folding, clamp,
    mask and fake-quantized weights, per output channel."""

    def out_major(self, w: torch.Tensor) -> torch.Tensor:
        return w.transpose(0, 1)  # [Cin, Cout, kh, kw] -> [Cout, Cin, kh, kw]

    def _compute(self, x, w, b):
        layer = self.layer
        return F.conv_transpose2d(x, w.transpose(0, 1), b, layer.stride, layer.padding, layer.output_padding)


def check_transpose_conv(name: str, m: nn.ConvTranspose2d) -> None:
    """Refuse, naming the layer, what the transpose_conv op does not compute."""
    what = f"layer {name!r} (ConvTranspose2d)"
    if m.groups != 1:
        raise DmxError(f"{what}: groups={m.groups} is not supported, only 1")
    if tuple(m.dilation) != (1, 1):
        raise DmxError(f"{what}: dilation={tuple(m.dilation)} is not supported, only 1")
    if m.padding_mode != "zeros":
        raise DmxError(f"{what}: padding_mode={m.padding_mode!r} is not supported, only 'zeros'")


def weighted_class(layer: nn.Module) -> type:
    """The fake-quantized class of a weighted layer."""
    return QuantTransposeConv if isinstance(layer, nn.ConvTranspose2d) else QuantWeighted


def resize_spec(name: str, node: fx.Node, mods: dict) -> dict:
    """{"kind", "align_corners", "half_pixel_centers"} of an Upsample or interpolate call; other modes
    and antialiasing are refused, naming the layer."""
    if node.op == "call_module":
        m = mods[node.target]
        mode, align, antialias = m.mode, m.align_corners, False
    else:
        names = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
        given = dict(zip(names, node.args)) | dict(node.kwargs)
        default = {F.upsample_nearest: "nearest", F.upsample_bilinear: "bilinear"}.get(node.target, "nearest")
        mode, antialias = given.get("mode", default), bool(given.get("antialias", False))
        align = True if node.target is F.upsample_bilinear else given.get("align_corners")
    if antialias:
        raise DmxError(f"layer {name!r}: interpolate with antialias=True is not supported")
    key = (mode, bool(align))
    if key not in _MODES:
        raise DmxError(f"layer {name!r}: resize mode {mode!r} is not supported (nearest, nearest-exact, bilinear)")
    kind, a, h = _MODES[key]
    return {"kind": kind, "align_corners": a, "half_pixel_centers": h}


def resize_codes(codes: torch.Tensor, out_hw: tuple[int, int], spec: dict) -> torch.Tensor:
    """The resize op on int64 NCHW codes: the same tables and arithmetic as the reference kernel."""
    a = SimpleNamespace(align_corners=spec["align_corners"], half_pixel_centers=spec["half_pixel_centers"])
    nhwc = codes.permute(0, 2, 3, 1)
    out_shape = (nhwc.shape[0], *out_hw, nhwc.shape[3])
    if spec["kind"] == "resize_nearest":
        rows, cols = (torch.from_numpy(t) for t in nearest_tables(nhwc.shape, out_shape, a))
        out = gather_nearest(nhwc, rows, cols)
    else:
        ys, xs = (torch.from_numpy(t) for t in bilinear_tables(nhwc.shape, out_shape, a))
        out = interpolate(nhwc, ys, xs, torch.where)
    return out.permute(0, 3, 1, 2)


class QuantResize(_HasInputs):
    """Upsample / interpolate on its input's grid: eval codes from the integer kernel, torch's own
    resize backward."""

    def __init__(self, fn, spec: dict, label: str):
        super().__init__()
        if isinstance(fn, nn.Module):
            self.fn = fn
        else:
            object.__setattr__(self, "fn", fn)
        self.spec, self.label = spec, label
        self.set_inputs([None])

    def extra_repr(self) -> str:
        return f"{self.label}, {self.spec['kind']}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fn(x)
        q = self.in_quant
        if not self._ready(q) or x.dim() != 4:
            return y
        with torch.no_grad():
            codes = resize_codes(q.codes(x).to(torch.int64), tuple(y.shape[2:]), self.spec)
        return ste(y, q.dequantize(codes).to(y.dtype))
