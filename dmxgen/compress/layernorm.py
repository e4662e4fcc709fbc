"""LayerNorm over the last dim as one fake-quantized layer, the integer `layer_norm` op.

Training runs the float LayerNorm (its gamma and beta learn) with a straight-through output
quantizer; once both grids have ranges the forward's values are the op's integer codes,
computed by the op's own kernel (`ops.layer_norm.integer_layer_norm`) on torch int64 tensors:
one implementation, which the reference runs on numpy arrays and torch.export traces here.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F

from ..errors import DmxError
from ..ops.layer_norm import integer_layer_norm, layer_norm_attrs
from .formats import NumFormat
from .layers import _HasInputs
from .quant import ActQuant


def last_dim_only(name: str, shape, normalized_shape) -> None:
    """LayerNorm normalizes the trailing `normalized_shape` dims; the op takes the last one only."""
    if len(tuple(normalized_shape)) != 1:
        raise DmxError(f"layer {name!r} (LayerNorm): normalizes the last {len(tuple(normalized_shape))} dims; "
                       "only a LayerNorm over the last dim is supported")
    if shape is not None and (len(shape) < 2 or shape[-1] != tuple(normalized_shape)[0]):
        raise DmxError(f"layer {name!r} (LayerNorm): normalized_shape {list(normalized_shape)} is not the "
                       f"last dim of its input {list(shape)}")


LAYER_NORM_FUNCS = {F.layer_norm, torch.layer_norm}


def quant_layer_norm(node: fx.Node, mods: dict, gm: fx.GraphModule, name: str, ofmt: NumFormat) -> "QuantLayerNorm":
    """The fake-quantized layer for an nn.LayerNorm call or an F.layer_norm(x, shape, weight, bias, eps)
    whose weight and bias are parameters of the traced net (get_attr nodes) or absent."""
    if node.op == "call_module":
        m = mods[node.target]
        return QuantLayerNorm(m.normalized_shape, m.weight, m.bias, m.eps, ofmt, name)
    names = ("input", "normalized_shape", "weight", "bias", "eps")
    given = dict(zip(names, node.args)) | dict(node.kwargs)
    params = []
    for key in ("weight", "bias"):
        a = given.get(key)
        if isinstance(a, fx.Node) and a.op == "get_attr":
            a = gm.get_parameter(a.target) if a.target in dict(gm.named_parameters()) else gm.get_buffer(a.target)
        elif a is not None:
            raise DmxError(f"layer {name!r} (layer_norm): its {key} must be a parameter of the model or None")
        params.append(a)
    shape = given.get("normalized_shape")
    shape = (shape,) if isinstance(shape, (int, fx.Node)) else tuple(shape)
    if any(isinstance(v, fx.Node) for v in shape):
        raise DmxError(f"layer {name!r} (layer_norm): give normalized_shape as numbers, not sizes computed in forward()")
    return QuantLayerNorm(shape, *params, float(given.get("eps", 1e-5)), ofmt, name)


def is_layer_norm_param(node: fx.Node) -> bool:
    """A get_attr node used only as the weight or bias of F.layer_norm calls (the layer holds it)."""
    return node.op == "get_attr" and bool(node.users) and all(
        u.op == "call_function" and u.target in LAYER_NORM_FUNCS and node is not (u.args[0] if u.args else None)
        for u in node.users)


class QuantLayerNorm(_HasInputs):
    """nn.LayerNorm (or F.layer_norm) over the last dim with an output quantizer."""

    def __init__(self, normalized_shape, weight, bias, eps: float, ofmt: NumFormat, name: str = ""):
        super().__init__()
        last_dim_only(name, None, normalized_shape)
        self.normalized_shape = tuple(int(d) for d in normalized_shape)
        self.eps = float(eps)
        self.weight, self.bias = weight, bias  # the float layer's own Parameters (None without affine): they learn
        self.name = name
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([None])

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}"

    def int_attrs(self) -> dict:
        """The layer_norm op's attrs on the current grids (both quantizers calibrated)."""
        cols = self.normalized_shape[0]
        ones = torch.ones(cols, dtype=torch.float64)
        gamma = (self.weight.detach().double() if self.weight is not None else ones).numpy()
        beta = (self.bias.detach().double() if self.bias is not None else ones * 0).numpy()
        s_in, _ = self.in_quant.qparams()
        s_out, zp_out = self.out_quant.qparams()
        fmt = self.out_quant.fmt
        return layer_norm_attrs(s_in, s_out, zp_out, gamma, beta, self.eps, fmt.qmin, fmt.qmax, self.name)

    frozen = None

    def freeze(self) -> None:
        """Fix the integer attrs (for torch.export): forward then runs the integer path only."""
        self.frozen = self._consts(self.int_attrs())

    @staticmethod
    def _consts(a: dict) -> tuple:
        return (torch.tensor(a["gamma"], dtype=torch.int64), torch.tensor(a["beta"], dtype=torch.int64),
                a["eps_term"], a["out_shift"], a["output_offset"], a["act_min"], a["act_max"])

    def integer_forward(self, codes: torch.Tensor, consts: tuple) -> torch.Tensor:
        return integer_layer_norm(codes.to(torch.int64), *consts, where=torch.where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            return self.out_quant.dequantize(self.integer_forward(self.in_quant.codes(x), self.frozen))
        last_dim_only(self.name, tuple(x.shape), self.normalized_shape)
        y = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        if not self._ready(self.in_quant, self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            codes = self.integer_forward(self.in_quant.codes(x), self._consts(self.int_attrs()))
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))
