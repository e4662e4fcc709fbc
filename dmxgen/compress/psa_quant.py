"""A learnable per-feature activation (compress/psa.py) as integer tables of G points.

The exported op is ops/lut_interp.py: per channel, the output codes at the input codes
-128, -128 + step, ... (step = 256 / G), linearly interpolated by the integer rule there.
Once both quantizers have ranges the forward computes exactly that: the reference kernel's
own numpy function, as a torch custom op (compress/kernel_ops.py, which torch.export records
for dmxgen.save), with the float function's gradient (straight through).
"""
from __future__ import annotations

import torch

from . import kernel_ops
from .layers import _Elementwise
from .psa import PSA, LazyLearnable, LerpPSA, LinearSpline
from .formats import NumFormat
from .quant import ActQuant, ste

LEARNABLE = (PSA, LerpPSA, LinearSpline, LazyLearnable)  # traced as one call, exported as a lut_interp op
DEFAULT_POINTS = 64


def table_points(fn) -> int:
    """G of the integer table: a LerpPSA's own grid size when it is one the op takes, else 64."""
    points = getattr(fn, "points", DEFAULT_POINTS)
    return points if points in (2, 4, 8, 16, 32, 64, 128) else DEFAULT_POINTS


class QuantInterp(_Elementwise):
    """fn (features on fn.dim) as one G-point int8 table per feature."""

    def __init__(self, fn, ofmt: NumFormat, name: str = ""):
        super().__init__(fn, type(fn).__name__)
        self.out_quant = ActQuant(ofmt, label=name)
        self.points = table_points(fn)

    def table(self) -> torch.Tensor:
        """[features, G] int64 output codes at the grid's input codes."""
        s, zp = self.in_quant.qparams()
        step = 256 // self.points
        codes = torch.arange(self.points, dtype=torch.float32) * step - 128
        x = ((codes - zp) * torch.tensor(s, dtype=torch.float32))[:, None].repeat(1, self.fn.features)
        with torch.no_grad():
            return self.out_quant.codes(self.fn(x)).to(torch.int64).t().contiguous()  # x: [G, features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fn(x)
        if not self._ready(self.in_quant, self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            codes = self.in_quant.codes(x).to(torch.int64).movedim(self.fn.dim, -1)
            out = kernel_ops.lut_interp(self.table(), codes)
            s, zp = self.out_quant.qparams()
            out = ((out.to(torch.float32) - zp) * torch.tensor(s, dtype=torch.float32)).movedim(-1, self.fn.dim)
        return ste(y, out)
