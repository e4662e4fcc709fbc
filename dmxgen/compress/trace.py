"""Trace a float nn.Module with torch.fx and say what each node is.

Every node gets a kind (weighted, bn, clamp, lut, add, sub, mul, maximum, minimum, cat, maxpool,
avgpool, reshape, permute, slice, pass, shape, recurrent and the pieces of its result); any other
call is refused with the layer's name, at transform time rather than at export.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import DmxError
from .aware import torch_class, torch_nn
from .config import Rule
from .functions import ELEMENTWISE_FUNCTIONS, ELEMENTWISE_METHODS, ELEMENTWISE_MODULES
from .affine import CHANNEL_LEAVES, Affine, bind_affines
from .decoders import RESIZE_FUNCS, QuantResize, check_transpose_conv
from .layers import QuantAvgPool, QuantBinary, QuantCat, QuantLUT, QuantWeighted
from .layernorm import LAYER_NORM_FUNCS, QuantLayerNorm, is_layer_norm_param
from .pools import (AVGPOOL_FUNCS, AVGPOOLS, MAXPOOL_FUNCS, MAXPOOLS, REDUCE_FUNCS, REDUCE_METHODS, module_pool_spec,
                    pool_spec, reduce_spec)
from .psa_quant import LEARNABLE
from .matmul import MATMUL_FUNCS, MATMUL_METHODS, QuantMatmul
from .quant import ActQuant
from .slicing import SLICE_FUNCTIONS, SLICE_METHODS, index_problem
from .softmax import SOFTMAX_FUNCS, SOFTMAX_METHODS, QuantSoftmax
from .recurrent import RECURRENT_PARTS, QuantRecurrent, check_recurrent_call, recurrent_item_kind, recurrent_problem

WEIGHTED = (torch_nn.Linear, torch_nn.Conv1d, torch_nn.Conv2d)
BATCHNORMS = (torch_nn.BatchNorm1d, torch_nn.BatchNorm2d)
CLAMPS = (torch_nn.ReLU, torch_nn.ReLU6, torch_nn.Hardtanh)
PASS_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                nn.Identity, nn.Flatten)
# identities in eval known by (module, class) name, so that their package need not be installed
PASS_BY_NAME = {("torchvision.ops.stochastic_depth", "StochasticDepth")}
PASS_FUNCS_BY_NAME = {("torchvision.ops.stochastic_depth", "stochastic_depth")}
QUANT_LAYERS = (QuantWeighted, QuantBinary, QuantLUT, QuantCat, QuantAvgPool, ActQuant, QuantLayerNorm, QuantRecurrent,
                QuantSoftmax, QuantMatmul, QuantResize)

SUPPORT_TABLE = "docs/compression.md#supported-layers"  # the list of what is supported, kept out of messages

_SHAPE_METHODS = {"size", "dim", "numel"}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze"}
_RESHAPE_FUNCS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
_PASS_FUNCS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
_PERMUTE_METHODS = {"permute", "transpose", "swapaxes"}
_PERMUTE_FUNCS = {torch.permute, torch.transpose, torch.swapaxes}
_CLAMP_FUNCS = {F.relu, torch.relu, F.relu6, F.hardtanh, torch.clamp, torch.clip}
_CLAMP_METHODS = {"relu", "relu_", "clamp", "clip", "clamp_"}
_ADD = {operator.add, torch.add, operator.iadd}
_MUL = {operator.mul, torch.mul, operator.imul}
_SUB = {operator.sub, torch.sub, operator.isub}
_SELECT = {torch.maximum: "maximum", torch.minimum: "minimum"}  # elementwise, of two tensors
_SCALAR_FUNCS = {operator.add, torch.add, operator.sub, torch.sub, operator.mul, torch.mul, operator.truediv,
                 torch.div, operator.iadd, operator.imul}


@dataclass
class Kinds:
    """What each node of the traced float graph is."""

    kind: dict  # node -> kind string
    tensor: set  # nodes whose value is a tensor (not a shape or an int)


class _Tracer(fx.Tracer):
    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname in self.leaves or isinstance(m, QUANT_LAYERS):
            return True
        if isinstance(m, CHANNEL_LEAVES):  # compress/affine.py: Affine and its layers, one op each
            return True
        if getattr(type(m), "_dmx_aware", False) or isinstance(m, LEARNABLE) or is_pass_module(m):
            return True
        return super().is_leaf_module(m, qualname)


def is_pass_module(m: nn.Module) -> bool:
    """Dropout, Identity, torchvision's StochasticDepth: the identity in eval."""
    return isinstance(m, PASS_MODULES) or (type(m).__module__, type(m).__name__) in PASS_BY_NAME


def is_pass_call(node: fx.Node) -> bool:
    """F.dropout and its variants, torchvision.ops.stochastic_depth: the identity in eval."""
    t = node.target
    return t in _PASS_FUNCS or (getattr(t, "__module__", None), getattr(t, "__name__", None)) in PASS_FUNCS_BY_NAME


def trace(net: nn.Module, leaves: set[str]) -> fx.GraphModule:
    """torch.fx symbolic trace; a failure is one line that says why."""
    try:
        graph = _Tracer(leaves).trace(net)
    except DmxError:  # a layer refused its own call while traced (compress/attention.py)
        raise
    except Exception as e:  # fx raises TraceError, TypeError, ... on data-dependent Python
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DmxError(f"cannot trace {type(net).__name__} with torch.fx ({msg}); data-dependent control "
                       "flow is not supported, keep forward() a straight line of layer and tensor calls") from None
    return bind_affines(fx.GraphModule(net, graph))  # p * x + q with 1-D parameters: one Affine


def exact_kind(node: fx.Node, mods: dict) -> str:
    """Kind of a compressed-graph node that is not a dmxgen layer: maxpool, reshape, pass or other.

    Derived from the node itself (not its meta), so that it survives pickling.
    """
    t = node.target
    if node.op == "call_module":
        m = mods[t]
        if isinstance(m, MAXPOOLS):
            return "maxpool"
        if isinstance(m, nn.Flatten):
            return "reshape"
        return "pass" if is_pass_module(m) else "other"
    if node.op == "call_method":
        if t in SLICE_METHODS:
            return "slice"
        if t in REDUCE_METHODS:
            return "reduce"
        return "reshape" if t in _RESHAPE_METHODS else "permute" if t in _PERMUTE_METHODS else "other"
    if node.op == "call_function":
        if t in SLICE_FUNCTIONS:
            return "slice"
        if t in REDUCE_FUNCS:
            return "reduce"
        if t in _PERMUTE_FUNCS:
            return "permute"
        if t in MAXPOOL_FUNCS:
            return "maxpool"
        if t in _RESHAPE_FUNCS:
            return "reshape"
        if is_pass_call(node):
            return "pass"
    return "other"


def lut_leaves(net: nn.Module, rules: list[Rule]) -> set[str]:
    """Modules a rule declares elementwise (approximation_function), traced as one call."""
    out = set()
    for name, mod in net.named_modules():
        if not name:
            continue
        for r in rules:
            if "approximation" not in r.settings or r.settings["approximation"].kind != "lut":
                continue
            if module_matches(r.selector, name, mod):
                out.add(name)
    return out


def module_matches(selector: str, name: str, module: nn.Module) -> bool:
    """Does a config selector (a name, re:REGEX or type:CLASS) pick this module?"""
    if selector.startswith("re:"):
        return re.fullmatch(selector[3:], name) is not None
    if selector.startswith("type:"):
        return selector[5:].lower() == type(module).__name__.lower()
    return selector == name


def is_tensor_arg(a, tensors: set) -> bool:
    return isinstance(a, fx.Node) and a in tensors


def classify(gm: fx.GraphModule, lut_leaves: set[str]) -> Kinds:
    """Give every node a kind, or raise naming the unsupported layer."""
    mods = dict(gm.named_modules())
    kind: dict = {}
    tensors: set = set()
    for node in gm.graph.nodes:
        targs = [a for a in node.all_input_nodes if a in tensors]
        k = None
        if node.op == "placeholder":
            k = "input"
        elif node.op == "output":
            k = "output"
        elif is_layer_norm_param(node):
            k = "shape"  # F.layer_norm's weight or bias: the layernorm layer holds the parameter
        elif node.op == "get_attr":
            raise DmxError(f"layer {node.name!r}: uses the constant tensor {node.target!r} directly; only "
                           "parameters of supported layers can be exported")
        elif node.op == "call_module":
            m = mods[node.target]
            k = _module_kind(node.target, m, lut_leaves)
            if k == "recurrent":
                check_recurrent_call(node, node.target, m)
        elif node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], fx.Node) \
                and kind.get(node.args[0]) in ("recurrent", *RECURRENT_PARTS):
            k = recurrent_item_kind(node, kind[node.args[0]], mods)  # (output, state) (compress/recurrent.py)
        elif not targs:
            k = "shape"  # arithmetic on sizes and ints: only feeds reshape arguments
        elif node.op == "call_method" and node.target in _SHAPE_METHODS:
            k = "shape"
        elif node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
            k = "shape"
        else:
            k = _call_kind(node, tensors)
        kind[node] = k
        if k not in ("shape", "output"):
            tensors.add(node)
    return Kinds(kind, tensors)


def _module_kind(name: str, m: nn.Module, lut_leaves: set[str]) -> str:
    if name in lut_leaves:
        return "lut"
    if isinstance(m, nn.ConvTranspose2d):  # the transpose_conv op (compress/decoders.py)
        check_transpose_conv(name, m)
        return "weighted"
    if isinstance(m, nn.Upsample):  # resize_nearest / resize_bilinear (compress/decoders.py)
        return "resize"
    if isinstance(m, WEIGHTED):
        if isinstance(m, (torch_nn.Conv1d, torch_nn.Conv2d)) and m.padding_mode not in ("zeros", "reflect",
                                                                                       "replicate"):
            raise DmxError(f"layer {name!r} ({type(m).__name__}): padding_mode={m.padding_mode!r} is not "
                           "supported, only 'zeros', 'reflect' and 'replicate'")
        return "weighted"
    if isinstance(m, LEARNABLE):
        return "psa"
    if isinstance(m, BATCHNORMS):
        return "bn"
    if isinstance(m, CLAMPS):
        return "clamp"
    if isinstance(m, (Affine, nn.PReLU)):  # per-channel layers (compress/affine.py)
        return "affine" if isinstance(m, Affine) else "prelu"
    if isinstance(m, MAXPOOLS + AVGPOOLS):
        module_pool_spec(name, m)  # refuses what the integer kernels cannot do
        return "maxpool" if isinstance(m, MAXPOOLS) else "avgpool"
    if is_pass_module(m):
        return "reshape" if isinstance(m, nn.Flatten) else "pass"
    if isinstance(m, nn.LayerNorm):
        return "layernorm"
    if isinstance(m, (nn.LSTM, nn.GRU)):  # the integer lstm / gru op, one per stacked layer (compress/recurrent.py)
        problem = recurrent_problem(m)
        if problem:
            raise unsupported(repr(name), type(m).__name__, problem)
        return "recurrent"
    if isinstance(m, nn.Softmax):
        return "softmax"  # compress/softmax.py
    cls = torch_class(m)  # an aware() layer is its torch.nn base class
    if cls.__name__ in ELEMENTWISE_MODULES and cls.__module__.startswith("torch.nn"):
        return "lut"
    raise unsupported(repr(name), type(m).__name__, "no integer kernel for it")


def unsupported(layer: str, what: str, reason: str) -> DmxError:
    """One line: the layer, what it is, why, and where the supported layers are listed."""
    return DmxError(f"layer {layer} ({what}) is not supported by the torch frontend: {reason}; see {SUPPORT_TABLE}")


def _where(node: fx.Node) -> str:
    """The node's name and, for a call made inside a submodule's forward, that module's path."""
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else ""
    return f"{node.name!r} in module {path!r}" if path else repr(node.name)


def _call_kind(node: fx.Node, tensors: set) -> str:
    t = node.target
    targs = [a for a in node.args if is_tensor_arg(a, tensors)]
    if isinstance(node.args[0] if node.args else None, (list, tuple)):
        targs = [a for a in node.args[0] if is_tensor_arg(a, tensors)]
    if node.op == "call_function":
        if t in SLICE_FUNCTIONS:
            problem = index_problem(node) if t is operator.getitem else None
            if problem:
                raise unsupported(_where(node), "getitem", problem)
            return "slice"
        if t in (torch.cat, torch.concat):
            return "cat"
        if t in RESIZE_FUNCS:
            return "resize"  # compress/decoders.py
        if t in LAYER_NORM_FUNCS:
            return "layernorm"
        if t in SOFTMAX_FUNCS:
            return "softmax"
        if t in MATMUL_FUNCS and len(targs) == 2:
            return "matmul"  # compress/matmul.py
        if t in _ADD and len(targs) == 2:
            return "add"
        if t in _MUL and len(targs) == 2:
            return "mul"
        if t in _SUB and len(targs) == 2:
            return _sub_kind(node)
        if t in _SELECT and len(targs) == 2:
            return _SELECT[t]
        if t in _SCALAR_FUNCS and len(targs) == 1:
            return "lut"
        if t in _CLAMP_FUNCS:
            return "clamp"
        if t in _RESHAPE_FUNCS:
            return "reshape"
        if t in _PERMUTE_FUNCS:
            return "permute"
        if is_pass_call(node):
            return "pass"
        if t in REDUCE_FUNCS:  # amax / amin: exact on the input's grid, like a max pool
            reduce_spec(node)
            return "reduce"
        if t in MAXPOOL_FUNCS or t in AVGPOOL_FUNCS:
            pool_spec(node, {})  # refuses unsupported options now, naming the layer
            return "maxpool" if t in MAXPOOL_FUNCS else "avgpool"
        if t in ELEMENTWISE_FUNCTIONS:
            return "lut"
        name = getattr(t, "__name__", str(t))
    else:
        if t in SLICE_METHODS:
            return "slice"
        if t in _RESHAPE_METHODS:
            return "reshape"
        if t in _PERMUTE_METHODS:
            return "permute"
        if t in REDUCE_METHODS:
            reduce_spec(node)
            return "reduce"
        if t in _CLAMP_METHODS:
            return "clamp"
        if t in SOFTMAX_METHODS:
            return "softmax"
        if t in MATMUL_METHODS and len(targs) == 2:
            return "matmul"
        if t == "mean":
            pool_spec(node, {})
            return "avgpool"
        if t in ("add", "add_") and len(targs) == 2:
            return "add"
        if t in ("mul", "mul_") and len(targs) == 2:
            return "mul"
        if t in ("sub", "sub_") and len(targs) == 2:
            return _sub_kind(node)
        if t in ("maximum", "minimum") and len(targs) == 2:
            return t
        if t in ("add", "sub", "mul", "div", "add_", "mul_") and len(targs) == 1:
            return "lut"
        if t in ELEMENTWISE_METHODS:
            return "lut"
        name = f"Tensor.{t}"
    raise unsupported(_where(node), name, "no integer kernel for this call")


def _sub_kind(node: fx.Node) -> str:
    """a - b of two tensors; torch.sub(a, b, alpha=k) scales b first, which no integer kernel does."""
    alpha = node.kwargs.get("alpha", 1)
    if alpha != 1:
        raise unsupported(_where(node), "sub", f"alpha={alpha} scales the second operand; only alpha=1 "
                          "has an integer kernel")
    return "sub"


def clamp_bounds(node: fx.Node, mods: dict) -> tuple[float | None, float | None]:
    """(lo, hi) of a ReLU/ReLU6/Hardtanh/clamp node."""
    if node.op == "call_module":
        m = mods[node.target]
        if isinstance(m, torch_nn.ReLU6):
            return 0.0, 6.0
        if isinstance(m, torch_nn.Hardtanh):
            return float(m.min_val), float(m.max_val)
        return 0.0, None
    t = node.target
    kw = dict(node.kwargs)
    if t in (F.relu, torch.relu, "relu", "relu_"):
        return 0.0, None
    if t is F.relu6:
        return 0.0, 6.0
    args = list(node.args[1:])
    if t is F.hardtanh:
        lo = args[0] if args else kw.get("min_val", -1.0)
        hi = args[1] if len(args) > 1 else kw.get("max_val", 1.0)
        return float(lo), float(hi)
    lo = args[0] if args else kw.get("min")
    hi = args[1] if len(args) > 1 else kw.get("max")
    for v in (lo, hi):
        if v is not None and not isinstance(v, (int, float)):
            raise DmxError(f"layer {node.name!r}: clamp bounds must be numbers")
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


class BoundCall:
    """A call_function/call_method node as a picklable one-tensor callable (other arguments fixed)."""

    def __init__(self, node: fx.Node, x_index: int = 0):
        self.method = node.op == "call_method"
        self.target = node.target
        args = list(node.args)
        args[x_index] = None
        if any(isinstance(a, fx.Node) for a in (*args, *node.kwargs.values())):
            raise DmxError(f"layer {node.name!r}: only one argument may be a tensor or a size computed in forward()")
        self.args, self.kwargs, self.index = tuple(args), dict(node.kwargs), x_index

    def __call__(self, x):
        args = list(self.args)
        args[self.index] = x
        if self.method:
            return getattr(args[0], self.target)(*args[1:], **self.kwargs)
        return self.target(*args, **self.kwargs)

    def __repr__(self) -> str:
        return f"{self.target if self.method else getattr(self.target, '__name__', self.target)}(...)"
