"""Rebuild a traced float network from fake-quantized layers, one per integer op.

Fusion follows the integer graph: a Linear/Conv with its BatchNorm and a
following ReLU/ReLU6/Hardtanh is one op; add, sub and mul absorb a following
clamp; elementwise activations (and clamps that cannot be fused) become
lookup tables; pooling, reshapes and dropout keep their input's grid.
"""
from __future__ import annotations

import operator

import torch.fx as fx
from torch import nn

from ..errors import DmxError
from .calibration import set_calibrations
from .config import LayerConfig, LayerInfo, Rule, fit_sparseness, resolve, type_aliases
from .exportable import check_exportable
from .multi_io import check_signature
from .formats import NumFormat, activation_format, weight_format
from .functions import FUNCTIONS
from .affine import channel_layer, fold_into, folds_ahead, folds_behind
from .attention import without_attention
from .transformer import without_transformers
from .decoders import QuantResize, resize_spec, weighted_class
from .layers import BINARY_OPS, QuantAvgPool, QuantBinary, QuantCat, QuantLUT, QuantWeighted
from .layernorm import quant_layer_norm
from .recurrent import RECURRENT_PARTS, quant_recurrent
from .matmul import QuantMatmul, matmul_operands
from .pools import pool_spec
from .learnable import with_learnable_activations
from .psa_quant import QuantInterp
from .quant import ActQuant
from .softmax import FIXED_GRID_NOTE, quant_softmax
from .trace import BoundCall, Kinds, is_tensor_arg, lut_leaves, clamp_bounds, classify, trace


class Builder:
    """Builds the fake-quantized GraphModule and the layer catalogue the config applies to."""

    def __init__(self, gm: fx.GraphModule, kinds: Kinds):
        self.gm, self.kinds = gm, kinds
        self.mods = dict(gm.named_modules())
        self.fused: dict = {}  # absorbed node -> the node it is fused into
        self.extra: dict = {}  # weighted/add node -> {"bn": node, "clamp": node}
        self.pre_folded: dict = {}  # BatchNorm node -> the conv after it that holds it (compress/affine.py)
        self.names: dict = {}  # node -> layer name
        self.layers: list[LayerInfo] = []
        self.aliases: dict[str, str] = {}

    def _single_user(self, node: fx.Node) -> fx.Node | None:
        users = list(node.users)
        return users[0] if len(users) == 1 else None

    def fuse(self) -> None:
        k = self.kinds.kind
        for node in self.gm.graph.nodes:  # the pieces of an LSTM's / GRU's result: the layer returns its output
            if k[node] in RECURRENT_PARTS:
                self.fused[node] = self.fused.get(node.args[0], node.args[0])
        for node in self.gm.graph.nodes:
            if k[node] not in ("weighted", "add", "sub", "mul") or node in self.fused:
                continue
            ext: dict = {}
            last = node
            nxt = self._single_user(last)
            behind = k[node] == "weighted" and nxt is not None and k.get(nxt) == "affine" and \
                nxt.op == "call_module" and folds_behind(self.mods[node.target], self.mods[nxt.target])
            if k[node] == "weighted" and nxt is not None and (k.get(nxt) == "bn" or behind) and nxt.args[0] is last:
                ext["bn"] = nxt
                self.fused[nxt] = node
                last = nxt
                nxt = self._single_user(last)
            if nxt is not None and k.get(nxt) == "clamp" and nxt.args[0] is last:
                ext["clamp"] = nxt
                self.fused[nxt] = node
            self.extra[node] = ext
        for node in self.gm.graph.nodes:  # a BatchNorm that cannot be folded is an affine op (compress/affine.py)
            nxt = self._single_user(node)
            if k[node] in ("bn", "affine") and node.op == "call_module" and node not in self.fused \
                    and nxt is not None and k.get(nxt) == "weighted" and nxt.args[0] is node \
                    and "pre_bn" not in self.extra.get(nxt, {}) \
                    and folds_ahead(self.mods[node.target], self.mods[nxt.target]):
                self.fused[node], self.pre_folded[node] = node.args[0], nxt  # exact: into the conv's weights
                self.extra.setdefault(nxt, {})["pre_bn"] = node
            elif k[node] == "bn" and node not in self.fused:
                k[node] = "affine"
            nxt = nxt if k[node] == "affine" else None
            if nxt is not None and k.get(nxt) == "clamp" and nxt.args[0] is node:  # BN -> ReLU -> conv
                self.fused[nxt] = node
                self.extra[node] = {"clamp": nxt}
        for node in self.gm.graph.nodes:  # a clamp that is not fused is a table on a grid of its own
            if k[node] == "clamp" and node not in self.fused:
                k[node] = "lut"

    def layer_name(self, node: fx.Node) -> str:
        """The module's qualified name (its fx node name for a second call), or the fx node name."""
        if node.op == "call_module":
            first = next(n for n in self.gm.graph.nodes if n.op == "call_module" and n.target == node.target)
            if first is node:
                return str(node.target)
        return node.name if node.name not in self.mods else f"{node.name}_fn"

    def catalogue(self) -> None:
        k = self.kinds.kind
        io = frozenset({"input_format", "output_format"})
        for node in self.gm.graph.nodes:
            kind = k[node]
            if kind in ("shape", "output"):
                continue
            name = self.layer_name(node)
            self.names[node] = name
            typ = type(self.mods[node.target]).__name__ if node.op == "call_module" else \
                getattr(node.target, "__name__", str(node.target))
            if node in self.fused:
                host = self.layer_name(self.pre_folded.get(node, self.fused[node]))
                what = "folded into" if kind == "bn" else "fused into"
                self.aliases[name] = f"layer {name!r} ({typ}) is {what} {host!r}: configure {host!r} instead"
                continue
            if kind == "input":
                fields, typ = frozenset({"output_format"}), "input"
            elif kind == "weighted":
                fields = io | {"weight_format", "bias_format", "weight_sparseness", "requantization", "bias_correction"}
            elif kind in ("cat",) + BINARY_OPS:
                fields, typ = io, kind
            elif kind in ("affine", "prelu"):
                fields = io
            elif kind == "layernorm":
                fields = io
            elif kind == "recurrent":
                fields = io | {"bias_correction"}
            elif kind == "matmul":
                fields, typ = io, kind
            elif kind == "lut":
                fields = io | {"approximation_function"}
            elif kind == "psa":
                fields = io | {"approximation_function"}
            else:
                fields = frozenset()
            if "output_format" in fields:  # whatever has an output grid of its own chooses its range
                fields = fields | {"activation_calibration"}
            note = "" if fields else "it keeps its input's quantization"
            if kind == "softmax":
                note = FIXED_GRID_NOTE
            module = str(node.target) if node.op == "call_module" else ""
            also = type_aliases(self.mods[node.target]) if node.op == "call_module" else ()
            self.layers.append(LayerInfo(name, typ, frozenset(fields), note, module, also))

    def build(self, cfgs: dict[str, LayerConfig]) -> fx.GraphModule:
        g = fx.Graph()
        env: dict = {}
        qsrc: dict = {}  # new node -> ActQuant whose grid the value is on
        root: dict[str, nn.Module] = {}
        k = self.kinds.kind
        explicit: dict[int, bool] = {}  # id(ActQuant) -> its format was set by the config

        def new_quant(fmt: NumFormat | None, label: str) -> ActQuant:
            q = ActQuant(activation_format(fmt), label=label)
            explicit[id(q)] = fmt is not None
            return q

        def constrain(q: ActQuant, fmt: NumFormat | None, who: str) -> None:
            if fmt is None or q is None:
                return
            want = activation_format(fmt)
            if explicit.get(id(q)) and q.fmt != want:
                raise DmxError(f"layer {who!r}: input_format {want.spelled()} conflicts with the "
                               f"output format {q.fmt.spelled()} of {q.label!r} (one tensor has one format)")
            q.fmt = want
            explicit[id(q)] = True

        def arg(a):
            return fx.node.map_arg(a, lambda n: env[n])

        for node in self.gm.graph.nodes:
            kind = k[node]
            if node in self.fused:
                env[node] = env[self.fused[node]]
                continue
            name = self.names.get(node, node.name)
            cfg = cfgs.get(name, LayerConfig())
            if kind == "input":
                p = g.placeholder(node.target)
                q = new_quant(cfg.output, name)
                qname = f"{name}_quant"
                root[qname] = q
                env[node] = g.call_module(qname, (p,))
                qsrc[env[node]] = q
                continue
            if kind == "output":
                g.output(arg(node.args[0]))
                continue
            ins = [env[a] for a in node.all_input_nodes if a in self.kinds.tensor]
            in_quants = [qsrc.get(a) for a in ins]
            if kind in ("weighted", "cat", "lut", "psa") + BINARY_OPS:
                for iq in in_quants:
                    constrain(iq, cfg.input, name)
            if kind == "weighted":
                layer = self.mods[node.target]
                ext = self.extra.get(node, {})
                bn = self.mods[ext["bn"].target] if "bn" in ext else None
                clamp = clamp_bounds(ext["clamp"], self.mods) if "clamp" in ext else (None, None)
                cfg = cfgs[name] = fit_sparseness(cfg, layer, name)  # N:M that does not fit: dense, warned
                try:
                    mod = weighted_class(layer)(layer, bn, clamp, weight_format(cfg.weight),
                                                activation_format(cfg.output), cfg.sparseness, name)
                except ValueError as e:
                    raise DmxError(f"layer {name!r} ({type(layer).__name__}): {e}") from None
                if "pre_bn" in ext:
                    fold_into(mod, self.mods[ext["pre_bn"].target])
                if cfg.requantization == "power_of_two":
                    if type(mod) is not QuantWeighted or getattr(layer, "groups", 1) != 1:
                        raise DmxError(f"layer {name!r} ({type(layer).__name__}): requantization POWER_OF_TWO is "
                                       "for Linear and Conv1d/Conv2d layers with groups=1")
                    mod.pot = True
                mod.correct_bias = cfg.bias_correction
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, (ins[0],))
            elif kind in BINARY_OPS:
                ext = self.extra.get(node, {})  # maximum and minimum fuse no clamp: TFLite's take none
                clamp = clamp_bounds(ext["clamp"], self.mods) if "clamp" in ext else (None, None)
                mod = QuantBinary(kind, activation_format(cfg.output), clamp, name)
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, tuple(ins))
            elif kind == "cat":
                dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
                mod = QuantCat(int(dim), activation_format(cfg.output), name)
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, tuple(ins))
            elif kind == "psa":  # a learnable per-feature activation: G-point tables (compress/psa_quant.py)
                mod = QuantInterp(self.mods[node.target], activation_format(cfg.output), name)
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, (ins[0],))
            elif kind == "lut":
                fn, label = self._lut_fn(node, cfg)
                mod = QuantLUT(fn, activation_format(cfg.output), name, label)
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, (ins[0],))
            elif kind == "layernorm":  # LayerNorm over the last dim: the integer layer_norm op (compress/layernorm.py)
                for iq in in_quants:
                    constrain(iq, cfg.input, name)
                mod = quant_layer_norm(node, self.mods, self.gm, name, activation_format(cfg.output))
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, (ins[0],))
                mod.set_inputs(in_quants)
                qsrc[new] = mod.out_quant
            elif kind == "recurrent":  # one integer lstm / gru op per stacked layer (compress/recurrent.py)
                for iq in in_quants:
                    constrain(iq, cfg.input, name)
                mod = quant_recurrent(self.mods[node.target], activation_format(cfg.output), name)
                mod.correct_bias = cfg.bias_correction
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, (ins[0],))
                mod.set_inputs(in_quants)
                qsrc[new] = mod.out_quant
            elif kind == "recurrent_last":  # h_n[-1] of an LSTM or GRU: its output's last step
                new = g.call_function(operator.getitem, (env[node.args[0]], (slice(None), -1)))
                qsrc[new] = qsrc[env[node.args[0]]]
            elif kind == "shape" and node.op == "get_attr":
                continue  # F.layer_norm's weight or bias, held by its layer
            elif kind in ("affine", "prelu"):  # per-channel layers (compress/affine.py)
                for iq in in_quants:
                    constrain(iq, cfg.input, name)
                clamp = clamp_bounds(self.extra[node]["clamp"], self.mods) if "clamp" in self.extra.get(node, {}) \
                    else (None, None)
                mod = channel_layer(kind, self.mods[node.target], clamp, activation_format(cfg.output), name)
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, (ins[0],))
                mod.set_inputs(in_quants)
                qsrc[new] = mod.out_quant
            elif kind in ("softmax", "matmul"):  # the integer softmax_gemmlowp / batch_matmul ops
                if kind == "matmul":  # operands in order: x @ x lists its input once in all_input_nodes
                    ins = [env[a] for a in matmul_operands(node)]
                    in_quants = [qsrc.get(a) for a in ins]
                for iq in in_quants:
                    constrain(iq, cfg.input, name)
                fmt = activation_format(cfg.output)
                mod = quant_softmax(node, self.mods, name, fmt) if kind == "softmax" else QuantMatmul(fmt, name)
                explicit[id(mod.out_quant)] = cfg.output is not None
                new = self._call(g, root, name, mod, tuple(ins))
                mod.set_inputs(in_quants)
                qsrc[new] = mod.out_quant
            elif kind == "resize":  # Upsample / interpolate on its input's grid (compress/decoders.py)
                fn = self.mods[node.target] if node.op == "call_module" else BoundCall(node)
                mod = QuantResize(fn, resize_spec(name, node, self.mods), str(getattr(fn, "mode", fn)))
                new = self._call(g, root, name, mod, (ins[0],))
                mod.set_inputs(in_quants)
                qsrc[new] = in_quants[0]
            elif kind == "avgpool":
                fn = self.mods[node.target] if node.op == "call_module" else BoundCall(node)
                mod = QuantAvgPool(fn, label=type(fn).__name__ if isinstance(fn, nn.Module) else str(node.target))
                mod.spec = pool_spec(node, self.mods)
                new = self._call(g, root, name, mod, (ins[0],))
                qsrc[new] = in_quants[0]
            else:  # maxpool, clamp, reshape, permute, pass, shape: the float op is exact on the grid
                if node.op == "call_module":
                    root[node.target] = self.mods[node.target]
                new = g.node_copy(node, lambda n: env[n])
                if kind != "shape":
                    qsrc[new] = in_quants[0] if in_quants else None
            if isinstance(mod_or_none := root.get(name), (QuantWeighted, QuantBinary, QuantLUT, QuantCat, QuantInterp)):
                mod_or_none.set_inputs(in_quants)
                qsrc[new] = mod_or_none.out_quant
            elif kind == "avgpool":
                root[name].set_inputs(in_quants)
            env[node] = new
        g.lint()
        set_calibrations(root, cfgs)
        return fx.GraphModule(root, g, class_name="CompressedNet")

    @staticmethod
    def _call(g: fx.Graph, root: dict, name: str, mod: nn.Module, args: tuple) -> fx.Node:
        root[name] = mod
        return g.call_module(name, args)

    def _lut_fn(self, node: fx.Node, cfg: LayerConfig):
        ap = cfg.approximation
        if ap.kind == "lut" and ap.name:
            return FUNCTIONS[ap.name], ap.name
        if node.op == "call_module":
            m = self.mods[node.target]
            return m, type(m).__name__
        tensors = self.kinds.tensor
        idx = next(i for i, a in enumerate(node.args) if is_tensor_arg(a, tensors))
        if node.op == "call_method" and idx != 0:
            raise DmxError(f"layer {node.name!r}: only the tensor's own method can be tabulated")
        label = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "fn")
        return BoundCall(node, idx), str(label)


def plain_layers(net: nn.Module) -> nn.Module:
    """`net`, or a copy with the layers torch runs as opaque calls rewritten as plain ones (the same
    float function, the same parameter names): what the compressed network is built from and trains."""
    net = without_transformers(net)  # TransformerEncoder(Layer) as its plain layers (compress/transformer.py)
    return without_attention(net)  # nn.MultiheadAttention as Linears, matmuls and a softmax (compress/attention.py)


def build_compressed(net: nn.Module, rules: list[Rule], source: str = "config"):
    """(GraphModule of fake-quantized layers, {layer name: LayerConfig}, [LayerInfo]); `net` has
    been through plain_layers (Model.transform keeps that copy as its float net)."""
    check_signature(net, f"{type(net).__name__} (torch)")  # positional tensor inputs only (compress/multi_io.py)
    net = with_learnable_activations(net, rules)  # approximation_function: LERP_PSA{G,R} etc. (compress/learnable.py)
    leaves = lut_leaves(net, rules)
    gm = trace(net, leaves)
    kinds = classify(gm, leaves)
    b = Builder(gm, kinds)
    b.fuse()
    check_exportable(gm, kinds.kind, b.layer_name, f"{type(net).__name__} (torch)")
    b.catalogue()
    cfgs = resolve(rules, b.layers, b.aliases, source)
    return b.build(cfgs), cfgs, b.layers



