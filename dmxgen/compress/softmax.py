"""Softmax as one fake-quantized layer, the integer `softmax_gemmlowp` op (TFLite Micro's softmax).

The integer-only kind, not TFLite's float-table `softmax`: its codes depend on no libm, so the
fake-quantized forward and the exported C agree to the bit on every machine. The output grid is
the op's own, 1/256 with zero point -128 (as TFLite requires): a fixed quantizer that calibration
does not move. Training runs the float softmax fake-quantized onto that grid (straight-through);
once the input grid has a range, eval runs the op's kernel on the input codes
(compress/kernel_ops.py, the reference's numpy code).
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F

from ..errors import DmxError
from ..graph.quant_params import softmax_gemmlowp_params
from . import kernel_ops
from .formats import NumFormat
from .layers import _HasInputs
from .quant import ActQuant

SOFTMAX_FUNCS = {F.softmax, torch.softmax}
SOFTMAX_METHODS = {"softmax"}
OUTPUT_SCALE, OUTPUT_ZERO_POINT = 1 / 256, -128  # the int8 softmax's output grid (TFLite)
FIXED_GRID_NOTE = "its output grid is fixed: scale 1/256, zero point -128"


class FixedQuant(ActQuant):
    """An output quantizer whose grid the op fixes: always calibrated, and calibration does not move it."""

    def __init__(self, fmt: NumFormat, scale: float, zero_point: int, label: str = ""):
        super().__init__(fmt, label)
        self.grid = (float(scale), int(zero_point))

    def qparams(self) -> tuple[float, int]:
        return self.grid

    @property
    def calibrated(self) -> bool:
        return True

    def observe(self, x: torch.Tensor) -> None:
        pass


def softmax_dim(node: fx.Node, mods: dict, name: str) -> int:
    """The dim of an nn.Softmax, F.softmax, torch.softmax or Tensor.softmax call; refuses what the op cannot do."""
    if node.op == "call_module":
        dim = mods[node.target].dim
    else:
        positional = node.args[3:4] if node.target is F.softmax else node.args[2:3]  # F.softmax: after _stacklevel
        if node.kwargs.get("dtype", positional[0] if positional else None) is not None:
            raise DmxError(f"layer {name!r} (softmax): a dtype argument is not supported")
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if not isinstance(dim, int):
        raise DmxError(f"layer {name!r} (softmax): give softmax an explicit integer dim (got {dim!r})")
    return dim


class QuantSoftmax(_HasInputs):
    """Softmax over `dim` (the exporter accepts the dim the graph holds last) on the fixed 1/256 grid."""

    def __init__(self, dim: int, fmt: NumFormat, name: str = ""):
        super().__init__()
        if (fmt.qmin, fmt.qmax) != (-128, 127):
            raise DmxError(f"layer {name!r} (softmax): the integer softmax writes int8, not {fmt.spelled()}")
        self.dim, self.name = dim, name
        self.out_quant = FixedQuant(fmt, OUTPUT_SCALE, OUTPUT_ZERO_POINT, label=name)
        self.set_inputs([None])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, softmax_gemmlowp"

    def attrs(self) -> dict:
        """The softmax_gemmlowp op's attrs for the input grid (what the exporter writes and forward runs)."""
        s, _ = self.in_quant.qparams()
        s = float(torch.tensor(s, dtype=torch.float32))  # as a .tflite stores it
        if s * (1 << 26) <= 1.0:  # TFLite's Prepare cannot represent beta * scale (see the TFLite frontend)
            raise DmxError(f"layer {self.name!r} (softmax): input scale {s:g} is below 2^-26")
        return {"beta": 1.0, "input_scale": s, **softmax_gemmlowp_params(1.0, s)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.softmax(x, dim=self.dim)
        if self.training or not self._ready(self.in_quant):
            return self.out_quant(y)
        a = self.attrs()
        with torch.no_grad():
            codes = self.in_quant.codes(x).to(torch.int64).transpose(self.dim, -1)  # the op runs over the last dim
            out = kernel_ops.softmax_gemmlowp(codes.contiguous(), a["input_multiplier"], a["input_left_shift"],
                                              a["diff_min"]).transpose(self.dim, -1)
        return self.out_quant.attach(y, self.out_quant.dequantize(out))


def quant_softmax(node: fx.Node, mods: dict, name: str, fmt: NumFormat) -> QuantSoftmax:
    """The fake-quantized layer of a softmax call or nn.Softmax."""
    return QuantSoftmax(softmax_dim(node, mods, name), fmt, name)
