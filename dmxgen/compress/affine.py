"""Per-channel layers of the torch side: the learned `Affine`, and the fake-quantized layers of the
`affine` op (an unfolded BatchNorm, an Affine) and of the `prelu` op (nn.PReLU).

Each computes its forward values with the integer arithmetic of its op (dmxgen/ops/affine.py,
dmxgen/ops/prelu.py) once its quantizers have ranges, so the fake-quantized model and the
exported graph agree to the bit; the float values only carry the gradient.
"""
from __future__ import annotations

import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..graph.quant_params import prelu_params
from .aware import torch_nn
from .formats import NumFormat
from .intops import clamp_codes, conv_multipliers, mbqm
from .layers import _HasInputs, apply_clamp
from .quant import fake_quant_weight, quantize_bias, ActQuant

AFFINE_WEIGHT = NumFormat(8, "PER_CHANNEL")  # one scalar per channel: its code is +-127, the multiplier holds the rest
PRELU_ALPHA = NumFormat(8, "PER_TENSOR")  # TFLite's PRELU reads one alpha scale


class Affine(nn.Module):
    """y = alpha * x + beta over the last dim, alpha and beta learned (ResMLP's Affine).

    Written as a module of its own so that dmxgen exports it as one integer `affine` op (a
    forward that multiplies by parameters directly is refused: the tracer sees constants)."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + self.beta


def _per_channel_view(v: torch.Tensor, dim: int, rank: int) -> torch.Tensor:
    """A per-channel vector shaped to broadcast along `dim` (1 or -1) of a rank-`rank` tensor."""
    if dim == -1 or rank <= 2:
        return v
    return v.reshape(1, -1, *([1] * (rank - 2)))


class QuantAffine(_HasInputs):
    """A BatchNorm1d/2d that cannot be folded (its running statistics, frozen as in QuantWeighted) or
    an Affine, with a fused clamp: one `affine` op, int8 per-channel weights, an int32 bias."""

    def __init__(self, src: nn.Module, clamp, ofmt: NumFormat, name: str = ""):
        super().__init__()
        self.src = src
        self.clamp = clamp
        self.name = name
        self.channel_dim = -1 if isinstance(src, Affine) else 1
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([None])

    def extra_repr(self) -> str:
        return f"{type(self.src).__name__}" + ("" if self.clamp == (None, None) else f", clamp={self.clamp}")

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, b) per channel in float: y = w * x + b."""
        src = self.src
        return (src.alpha, src.beta) if isinstance(src, Affine) else bn_scale_shift(src)

    def integer_params(self) -> dict:
        """The affine op's per-channel integers: weight and bias codes, multiplier, shift, clamp."""
        with torch.no_grad():
            w, b = self.scale_shift()
            _, w_codes, w_scales = fake_quant_weight(w.reshape(-1, 1), AFFINE_WEIGHT)
            s_in, _ = self.in_quant.qparams()
            s_out, zp_out = self.out_quant.qparams()
            _, b_codes = quantize_bias(b, s_in, w_scales)
            mult, shift = conv_multipliers(s_in, w_scales.numpy(), s_out)
            fmt = self.out_quant.fmt
            act, amin, amax = clamp_codes(self.clamp, s_out, zp_out, fmt.qmin, fmt.qmax)
        return {"weight": w_codes.reshape(-1).to(torch.int64).numpy(), "bias": b_codes.to(torch.int64).numpy(),
                "multiplier": mult.astype(np.int64), "shift": shift.astype(np.int64),
                "activation": act, "act_min": amin, "act_max": amax}

    frozen = None

    def freeze(self) -> None:
        self.frozen = self.integer_params()

    def integer_forward(self, codes: torch.Tensor, p: dict) -> torch.Tensor:
        """The affine op on integer codes (ops/affine.py's reference, in torch)."""
        _, zp_in = self.in_quant.qparams()
        _, zp_out = self.out_quant.qparams()
        rank = codes.dim()

        def view(name):
            return _per_channel_view(torch.from_numpy(np.asarray(p[name], np.int64)), self.channel_dim, rank)

        acc = (codes.to(torch.int64) - zp_in) * view("weight") + view("bias")
        return torch.clamp(mbqm(acc, view("multiplier"), view("shift")) + zp_out, p["act_min"], p["act_max"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:  # inference copy for torch.export: integer path only
            return self.out_quant.dequantize(self.integer_forward(self.in_quant.codes(x), self.frozen))
        w, b = self.scale_shift()
        y = apply_clamp(x * _per_channel_view(w, self.channel_dim, x.dim())
                        + _per_channel_view(b, self.channel_dim, x.dim()), self.clamp)
        if not self._ready(self.in_quant, self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            codes = self.integer_forward(self.in_quant.codes(x), self.integer_params())
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))


class QuantPReLU(_HasInputs):
    """nn.PReLU (1 or C parameters along dim 1): one `prelu` op, alpha int8 on a grid of its own."""

    def __init__(self, prelu: nn.Module, ofmt: NumFormat, name: str = ""):
        super().__init__()
        self.prelu = prelu
        self.name = name
        self.out_quant = ActQuant(ofmt, label=name)
        self.set_inputs([None])

    def extra_repr(self) -> str:
        return f"num_parameters={self.prelu.num_parameters}"

    def integer_params(self) -> dict:
        """Alpha's codes (one per parameter) and the op's offsets and two multipliers."""
        with torch.no_grad():
            _, codes, scale = fake_quant_weight(self.prelu.weight.reshape(-1), PRELU_ALPHA)
            (s_in, zp_in), (s_out, zp_out) = self.in_quant.qparams(), self.out_quant.qparams()
            return {"input_offset": -zp_in, "alpha_offset": 0, "output_offset": zp_out,
                    **prelu_params(s_in, float(scale[0]), s_out),
                    "codes": codes.to(torch.int64).numpy()}

    frozen = None

    def freeze(self) -> None:
        self.frozen = self.integer_params()

    def integer_forward(self, codes: torch.Tensor, p: dict) -> torch.Tensor:
        """The prelu op on integer codes (ops/prelu.py's reference, in torch)."""
        x = codes.to(torch.int64) + p["input_offset"]
        alpha = _per_channel_view(torch.from_numpy(p["codes"]), 1, x.dim()) if p["codes"].size > 1 else \
            torch.from_numpy(p["codes"])
        pos = mbqm(x, p["multiplier_identity"], p["shift_identity"])
        neg = mbqm(x * (alpha + p["alpha_offset"]), p["multiplier_alpha"], p["shift_alpha"])
        fmt = self.out_quant.fmt
        return torch.clamp(torch.where(x >= 0, pos, neg) + p["output_offset"], fmt.qmin, fmt.qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            return self.out_quant.dequantize(self.integer_forward(self.in_quant.codes(x), self.frozen))
        y = F.prelu(x, self.prelu.weight)
        if not self._ready(self.in_quant, self.out_quant):
            return self.out_quant(y)
        with torch.no_grad():
            codes = self.integer_forward(self.in_quant.codes(x), self.integer_params())
        return self.out_quant.attach(y, self.out_quant.dequantize(codes))


CHANNEL_LEAVES = (Affine, QuantAffine, QuantPReLU)  # traced as one call each


def channel_layer(kind: str, module: nn.Module, clamp, ofmt: NumFormat, name: str) -> nn.Module:
    """The fake-quantized layer of a node of kind `affine` (a BatchNorm or an Affine) or `prelu`."""
    return QuantPReLU(module, ofmt, name) if kind == "prelu" else QuantAffine(module, clamp, ofmt, name)


# -- `alpha * x + beta` written with the module's own parameters: bound to one Affine ---------------
_MUL = {operator.mul, torch.mul, "mul"}
_ADD = {operator.add, torch.add, "add"}


def _vector_attr(gm: fx.GraphModule, node) -> torch.Tensor | None:
    """The 1-D parameter or buffer a get_attr node reads, else None."""
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    try:
        value = gm.get_parameter(node.target)
    except AttributeError:
        try:
            value = gm.get_buffer(node.target)
        except AttributeError:
            return None
    return value if value.dim() == 1 else None


def _binary(node, ops: set) -> bool:
    return node.op in ("call_function", "call_method") and node.target in ops and len(node.args) == 2 \
        and not node.kwargs


def _other(node, attr) -> object:
    a, b = node.args
    return b if a is attr else a


def bind_affines(gm: fx.GraphModule) -> fx.GraphModule:
    """Each `p * x` (+ `q`) with 1-D parameters p, q of one size (ResMLP's Affine, LayerScale's
    `gamma * x`) as a call of one Affine sharing those parameters, which trains them as before
    and exports as one `affine` op. The module that held p is replaced by the Affine when nothing
    else reads it."""
    for mul in list(gm.graph.nodes):
        if not _binary(mul, _MUL):
            continue
        attr = next((a for a in mul.args if _vector_attr(gm, a) is not None), None)
        x = _other(mul, attr) if attr is not None else None
        if x is None or not isinstance(x, fx.Node) or _vector_attr(gm, x) is not None:
            continue
        alpha = _vector_attr(gm, attr)
        last, beta, shift = mul, None, None
        users = list(mul.users)
        if len(users) == 1 and _binary(users[0], _ADD) and mul in users[0].args:
            q = _other(users[0], mul)
            beta = _vector_attr(gm, q)
            if beta is not None and beta.shape == alpha.shape:
                last, shift = users[0], q
            else:
                beta = None
        aff = Affine.__new__(Affine)
        nn.Module.__init__(aff)
        aff.alpha = alpha
        if beta is None:
            aff.register_buffer("beta", torch.zeros_like(alpha.detach()))  # LayerScale: no shift
        else:
            aff.beta = beta
        path = attr.target.rpartition(".")[0]
        name = path if path and not _still_read(gm, path, {attr, shift}) else f"{attr.target.replace('.', '_')}_affine"
        gm.add_submodule(name, aff)
        with gm.graph.inserting_before(mul):
            call = gm.graph.call_module(name, (x,))
        last.replace_all_uses_with(call)
        for dead in (last, mul) if last is not mul else (mul,):
            gm.graph.erase_node(dead)
        for node in (attr, shift):
            if node is not None and not node.users:
                gm.graph.erase_node(node)
    gm.recompile()
    return gm


def _still_read(gm: fx.GraphModule, path: str, nodes: set) -> bool:
    """Does any node but `nodes` read the module at `path` (or anything under it)?"""
    return any(n.target == path or (isinstance(n.target, str) and n.target.startswith(path + "."))
               for n in gm.graph.nodes if n.op in ("get_attr", "call_module") and n not in nodes)


# -- a BatchNorm right before a convolution without padding: folded into its weights (exact) --------
def bn_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) per channel of a BatchNorm with its running statistics, or of an Affine: bn(x) = s * x + t."""
    if isinstance(bn, Affine):
        return bn.alpha, bn.beta
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = bn.weight * s
    return s, -bn.running_mean * s + (bn.bias if bn.bias is not None else 0.0)


def folds_ahead(bn: nn.Module, layer: nn.Module) -> bool:
    """Is conv(bn(x)) one convolution exactly? Only without padding (a padded zero would be bn's
    shift, not zero) and without groups; BatchNorm1d before Conv1d, BatchNorm2d before Conv2d; an
    Affine (over the last dim) before a Linear."""
    if isinstance(bn, Affine):
        return isinstance(layer, torch_nn.Linear)
    pairs = ((torch_nn.BatchNorm1d, torch_nn.Conv1d), (torch_nn.BatchNorm2d, torch_nn.Conv2d))
    if not any(isinstance(bn, b) and isinstance(layer, c) for b, c in pairs) or layer.groups != 1:
        return False
    if isinstance(layer.padding, str):
        return layer.padding == "valid" or all(k == 1 for k in layer.kernel_size)
    return not any(layer.padding)


def fold_ahead(w: torch.Tensor, b: torch.Tensor, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, b) of conv(bn(x)): the input channels scaled by s, the bias plus the weights' sum of t."""
    s, t = bn_scale_shift(bn)
    shape = (1, -1) + (1,) * (w.dim() - 2)
    return w * s.reshape(shape), b + (w * t.reshape(shape)).sum(dim=tuple(range(1, w.dim())))


def folds_behind(layer: nn.Module, affine: nn.Module) -> bool:
    """Is affine(linear(x)) one Linear exactly? An Affine scales the Linear's output features."""
    return isinstance(affine, Affine) and isinstance(layer, torch_nn.Linear)


def fold_into(mod: nn.Module, bn: nn.Module) -> None:
    """Give QuantWeighted `mod` the BatchNorm before it, and choose its mask again from the folded weights."""
    from .sparsity import compute_mask

    mod.pre_bn = bn
    with torch.no_grad():
        mod.weight_mask.copy_(mod.out_major(compute_mask(mod.folded(masked=False)[0], mod.sparseness)))
