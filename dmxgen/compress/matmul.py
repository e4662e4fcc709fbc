"""torch.matmul / torch.bmm / `@` of two activations as one fake-quantized layer, the `batch_matmul` op.

Like add and mul it has an output grid of its own. Until its grids have ranges the float product
is fake-quantized straight-through; after, its values (in training too, as QuantBinary's) are the op's
integer codes, computed by the op's own kernel (ops/batch_matmul.py batch_matmul_codes, through
compress/kernel_ops.py), with the float product's gradient.
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx

from ..graph.quant_params import batch_matmul_params
from . import kernel_ops
from .formats import NumFormat
from .layers import _HasInputs
from .quant import ActQuant

MATMUL_FUNCS = {torch.matmul, torch.bmm, operator.matmul}
MATMUL_METHODS = {"matmul", "bmm", "__matmul__"}


def matmul_operands(node: fx.Node) -> tuple:
    """The (lhs, rhs) argument nodes of a matmul call, in order (x @ x is one node twice)."""
    args = list(node.args[:2])
    if len(args) < 2:
        args.append(node.kwargs.get("other", node.kwargs.get("mat2")))
    return tuple(args)


class QuantMatmul(_HasInputs):
    """lhs @ rhs with an output quantizer; both operands are activations."""

    def __init__(self, ofmt: NumFormat, name: str = ""):
        super().__init__()
        self.name = name
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([None, None])

    def extra_repr(self) -> str:
        return "batch_matmul"

    def attrs(self) -> dict:
        """The batch_matmul op's attrs for the current grids (what the exporter writes and forward runs)."""
        (sa, za), (sb, zb), (so, zo) = (q.qparams() for q in (*self.in_quants, self.out_quant))
        fmt = self.out_quant.fmt
        return {"adj_x": 0, "adj_y": 0, "lhs_offset": -za, "rhs_offset": -zb, "output_offset": zo,
                "act_min": fmt.qmin, "act_max": fmt.qmax, **batch_matmul_params(sa, sb, so)}

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(a, b)
        qa, qb = self.in_quants
        if not self._ready(qa, qb, self.out_quant):
            return self.out_quant(y)
        at = self.attrs()
        with torch.no_grad():
            codes = kernel_ops.batch_matmul(qa.codes(a).to(torch.int64), qb.codes(b).to(torch.int64),
                                            at["lhs_offset"], at["rhs_offset"], at["output_offset"],
                                            at["output_multiplier"], at["output_shift"], at["act_min"], at["act_max"])
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))
