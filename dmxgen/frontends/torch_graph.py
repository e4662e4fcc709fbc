"""A calibrated dmxgen Model -> the integer Graph, op by op.

Each fake-quantized layer becomes one op carrying the same integer attrs the
TFLite frontend derives (per-channel multiplier/shift from
graph/fixedpoint.py, offsets, clamp bounds, OHWI weights, int32 bias), so the
reference and every backend take it unchanged. Activations are NHWC: a
PyTorch NCHW tensor [N, C, H, W] is the graph tensor [N, H, W, C], a Conv1d
NCL tensor [N, C, L] is [N, 1, L, C]; flattening such a tensor into a Linear
permutes the Linear's weight columns instead of moving data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import DmxError
from ..graph import Graph, Op, QuantParams, Tensor
from ..compress.aware import torch_nn
from ..compress.exportable import MEAN_SPATIAL_ONLY, POOL_NEEDS_CHANNELS_FIRST, linear_layout_message
from ..compress.layout import graph_shape, layout_of_rank, to_graph_order
from ..compress.multi_io import examples as example_tensors, flatten, output_names, returned
from ..compress.model import set_graph_builder
from ..compress.pools import window_attrs
from ..compress.intops import add_params, clamp_codes, mul_params, requant_params, sub_params
from ..ops import SPECS, RegistrationError
from ..compress.slicing import TUPLES
from .torch_slices import graph_attrs


@dataclass
class Val:
    """A graph tensor seen from torch: its torch shape, layout and grid."""

    name: str
    tshape: tuple
    layout: str  # plain | nchw | ncl
    quant: object  # ActQuant
    perm: np.ndarray | None = None  # graph flat index -> torch flat index (after flattening NCHW)

    def graph_codes(self, value: torch.Tensor) -> np.ndarray:
        """The torch value (batch 1) as this tensor's int64 codes in the graph's shape and order."""
        q = to_graph_order(self.quant.codes(value).to(torch.int64), self.layout)
        if self.layout == "plain" and self.perm is not None:
            q = q.reshape(q.shape[0], -1)[:, torch.from_numpy(self.perm)]
        return q.numpy().reshape(graph_shape(self.tshape, self.layout))


class _Exporter:
    def __init__(self, model, example: tuple):  # one batch-1 tensor per input
        self.model = model
        self.gm: fx.GraphModule = model.body
        self.mods = dict(self.gm.named_modules())
        self.g = Graph(source=f"{type(model.float_net).__name__} (torch)")
        self.vals: dict = {}
        self.example = example

    # -- helpers -----------------------------------------------------------
    def quant_params(self, aq) -> QuantParams:
        s, zp = aq.qparams()
        return QuantParams(np.array([s], np.float32), np.array([zp], np.int64))

    def new_tensor(self, name: str, tshape: tuple, layout: str, aq, perm=None) -> Val:
        base, i = name, 1
        while name in self.g.tensors:
            name = f"{base}_{i}"
            i += 1
        self.g.add_tensor(Tensor(name, graph_shape(tshape, layout), "int8", self.quant_params(aq)))
        return Val(name, tuple(tshape), layout, aq, perm)

    def const(self, name: str, data: np.ndarray, dtype: str, quant: QuantParams | None) -> str:
        self.g.add_tensor(Tensor(name, data.shape, dtype, quant, np.ascontiguousarray(data.astype(dtype))))
        return name

    def add_op(self, name: str, kind: str, inputs: list[str], output: str, attrs: dict) -> None:
        if "torch" not in SPECS[kind].targets:  # the support table says which kinds this frontend writes
            raise RegistrationError(f"the torch frontend wrote a {kind} op; ops/{kind}.py does not list 'torch' in targets")
        self.g.ops.append(Op(name, kind, inputs, [output], attrs))

    def fail(self, name: str, msg: str):
        raise DmxError(f"layer {name!r}: {msg}")

    # -- walk ---------------------------------------------------------------
    def run(self) -> Graph:
        gm = self.gm
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                try:
                    ShapeProp(gm).propagate(*self.example)
                except RuntimeError as e:  # ShapeProp wraps what a layer refused (e.g. an LSTM's cell range)
                    if isinstance(e.__cause__, DmxError):
                        raise e.__cause__ from None
                    raise
                for node in gm.graph.nodes:
                    self.visit(node)
        finally:
            self.model.train(was_training)
        self.g.validate()
        return self.g

    def tshape(self, node: fx.Node) -> tuple:
        tm = node.meta.get("tensor_meta")
        if tm is None or not hasattr(tm, "shape"):
            self.fail(node.name, "does not produce one tensor")
        return tuple(int(d) for d in tm.shape)

    def visit(self, node: fx.Node) -> None:
        from ..compress.affine import QuantAffine, QuantPReLU
        from ..compress.decoders import QuantResize
        from ..compress.layers import QuantAvgPool, QuantBinary, QuantCat, QuantLUT, QuantWeighted
        from ..compress.psa_quant import QuantInterp
        from ..compress.matmul import QuantMatmul, matmul_operands
        from ..compress.softmax import QuantSoftmax
        from ..compress.layernorm import QuantLayerNorm
        from ..compress.recurrent import QuantRecurrent
        from ..compress.quant import ActQuant

        from ..compress.trace import exact_kind

        if node.op == "placeholder":
            return
        if node.op == "output":
            for o in flatten(node.args[0]):  # a tensor, a tuple / list or a dict of them (compress/multi_io.py)
                v = self.vals.get(o)
                if v is None:
                    self.fail(str(o), "the model output is not a quantized tensor")
                if v.perm is not None:
                    self.fail(str(o), "the output is a flattened NCHW tensor; end the model with a Linear")
                v = self.as_layout(str(o), v, layout_of_rank(len(v.tshape), self.model))
                self.g.outputs.append(v.name)
            return
        mod = self.mods.get(node.target) if node.op == "call_module" else None
        name = node.name
        if mod is not None and node is next(n for n in self.gm.graph.nodes if n.target == node.target):
            name = str(node.target)  # a module's first call carries its qualified name
        if "tensor_meta" not in node.meta:  # sizes and ints that only feed reshape arguments
            return
        kind = exact_kind(node, self.mods)
        if isinstance(mod, ActQuant):  # the graph input's quantizer
            src = node.args[0]
            if src.op != "placeholder":
                self.fail(name, "requantizing inside the graph is not supported")
            tshape = self.tshape(node)
            tshape = (1,) + tshape[1:]
            v = self.new_tensor(str(src.target), tshape, layout_of_rank(len(tshape), self.model), mod)
            self.g.inputs.append(v.name)
            self.vals[node] = v
            return
        ins = [self.vals[a] for a in node.all_input_nodes if a in self.vals]
        if isinstance(mod, QuantWeighted):
            self.vals[node] = self.weighted(node, name, mod, ins[0])
        elif isinstance(mod, QuantBinary):
            self.vals[node] = self.binary(node, name, mod, ins)
        elif isinstance(mod, QuantLUT):
            v = self.new_tensor(name, self.tshape(node), ins[0].layout, mod.out_quant, ins[0].perm)
            table = mod.table().numpy()
            lo, hi = mod.out_quant.fmt.qmin, mod.out_quant.fmt.qmax
            self.add_op(name, "lut", [ins[0].name], v.name, {"table": np.clip(table, lo, hi).astype(np.int8)})
            self.vals[node] = v
        elif isinstance(mod, QuantInterp):
            self.vals[node] = self.interp_table(node, name, mod, ins[0])
        elif isinstance(mod, QuantLayerNorm):
            self.vals[node] = self.layer_norm(node, name, mod, ins[0])
        elif isinstance(mod, QuantRecurrent):  # one lstm / gru op per stacked layer (frontends/torch_recurrent.py)
            from .torch_recurrent import export_recurrent

            self.vals[node] = export_recurrent(self, node, name, mod, ins[0])
        elif isinstance(mod, QuantSoftmax):
            self.vals[node] = self.softmax(node, name, mod, ins[0])
        elif isinstance(mod, QuantMatmul):  # operands in order (x @ x lists x once in all_input_nodes)
            self.vals[node] = self.matmul(node, name, mod, [self.vals[a] for a in matmul_operands(node)])
        elif isinstance(mod, QuantCat):
            self.vals[node] = self.cat(node, name, mod, ins)
        elif isinstance(mod, (QuantAffine, QuantPReLU)):  # per-channel layers (frontends/torch_affine.py)
            from .torch_affine import export_affine, export_prelu

            export = export_prelu if isinstance(mod, QuantPReLU) else export_affine
            self.vals[node] = export(self, node, name, mod, ins[0])
        elif isinstance(mod, QuantResize):  # Upsample / interpolate (frontends/torch_decoders.py)
            from .torch_decoders import export_resize

            self.vals[node] = export_resize(self, node, name, mod, ins[0])
        elif isinstance(mod, QuantAvgPool):
            self.vals[node] = self.pool(node, name, mod.spec, ins[0], "avg_pool2d")
        elif kind == "maxpool":
            from ..compress.pools import pool_spec

            self.vals[node] = self.pool(node, name, pool_spec(node, self.mods), ins[0], "max_pool2d")
        elif kind == "reshape":
            self.vals[node] = self.reshape(node, name, ins[0])
        elif kind == "permute":
            self.vals[node] = self.permute(node, name, ins[0])
        elif kind == "slice":
            self.vals[node] = self.slice(node, name, ins[0])
        elif kind == "pass":
            self.vals[node] = ins[0]
        elif kind == "reduce":  # amax / amin
            from ..compress.pools import reduce_spec
            from .torch_reduce import export_reduce

            self.vals[node] = export_reduce(self, node, name, ins[0], reduce_spec(node))
        else:
            self.fail(name, f"cannot be exported ({node.op} {node.target})")

    # -- ops ----------------------------------------------------------------
    def weighted(self, node, name: str, m, x: Val) -> Val:
        w_hat, w_codes, w_scales, _, b_codes = m.quantized()
        if b_codes is None:
            self.fail(name, "its input has no recorded range")
        layer = m.layer
        cout = w_codes.shape[0]
        s_in, zp_in = x.quant.qparams()
        s_out, zp_out = m.out_quant.qparams()
        scales = w_scales.numpy().astype(np.float32)
        scales_c = scales if scales.size == cout else np.full(cout, scales[0], np.float32)
        mult, shift = m.multipliers(s_in, scales_c, s_out)
        fmt = m.out_quant.fmt
        act, amin, amax = clamp_codes(m.clamp, s_out, zp_out, fmt.qmin, fmt.qmax)
        attrs = {"input_offset": -zp_in, "output_offset": zp_out}
        q = w_codes.numpy().astype(np.int64)
        wq = QuantParams(scales, np.zeros(scales.size, np.int64), 0 if scales.size > 1 else None)
        bias = b_codes.numpy().astype(np.int64)
        out_t = self.tshape(node)
        if isinstance(layer, torch_nn.Linear):
            if x.layout != "plain":
                self.fail(name, linear_layout_message(x.layout))
            if x.perm is not None:
                q = q[:, x.perm]
            kind = "fully_connected"
            weight = q
            attrs.update(batches=int(np.prod(x.tshape)) // q.shape[1], rounding=m.rounding)
            out = self.new_tensor(name, out_t, "plain", m.out_quant)
        else:
            x = self.channels_first(name, x, "ncl" if q.ndim == 3 else "nchw")
            if x.perm is not None or x.layout == "plain":
                self.fail(name, f"a convolution needs an {'NCL' if q.ndim == 3 else 'NCHW'} input")
            if q.ndim == 3:  # Conv1d -> conv2d over [N, 1, L, C]
                q = q[:, :, None, :]
                stride, dil = (1, layer.stride[0]), (1, layer.dilation[0])
                pad = self._conv_pad(layer, name, x, 1)
                pad = (0, pad[0], 0, pad[1])
            else:
                stride, dil = tuple(layer.stride), tuple(layer.dilation)
                ph, pw = self._conv_pad(layer, name, x, 2)
                pad = (ph[0], pw[0], ph[1], pw[1])
            if getattr(layer, "padding_mode", "zeros") != "zeros":  # reflect / replicate: a mirror_pad first
                from .torch_pad import export_mirror_pad

                x, pad = export_mirror_pad(self, name, x, layer, pad), (0, 0, 0, 0)
            groups, cin = layer.groups, layer.in_channels
            attrs.update(stride=stride, dilation=dil, pad=pad)
            if m.pot:  # conv2d's attrs leave the default (double) rounding out
                attrs["rounding"] = m.rounding
            if isinstance(layer, torch.nn.ConvTranspose2d):  # output y = input y * stride - padding + ky;
                # output_padding only lengthens the output (its shape): explicit pads, ops/transpose_conv.py
                kind, weight = "transpose_conv", q.transpose(0, 2, 3, 1)
                del attrs["dilation"]
                attrs["pad"] = pad[:2]
            elif groups == 1:
                kind, weight = "conv2d", q.transpose(0, 2, 3, 1)
            elif groups == cin and cout % cin == 0:
                kind, weight = "depthwise_conv2d", q[:, 0].transpose(1, 2, 0)[None]
                attrs["depth_multiplier"] = cout // cin
                wq = QuantParams(scales, np.zeros(scales.size, np.int64), 3 if scales.size > 1 else None)
            else:  # grouped: block-diagonal dense weights (the zeros compress away in CSR/dCSR)
                kind = "conv2d"
                kh, kw = q.shape[2], q.shape[3]
                dense = np.zeros((cout, kh, kw, cin), np.int64)
                cin_g, cout_g = cin // groups, cout // groups
                for o in range(cout):
                    g = o // cout_g
                    dense[o, :, :, g * cin_g:(g + 1) * cin_g] = q[o].transpose(1, 2, 0)
                weight = dense
            out = self.new_tensor(name, out_t, x.layout, m.out_quant)
        attrs.update(multiplier=mult, shift=shift, activation=act, act_min=amin, act_max=amax)
        if m.wfmt.bits == 4 and kind != "transpose_conv":  # transpose_conv reads int8-stored weights
            attrs["weight_bits"] = 4
        wname = self.const(f"{name}.weight", weight, "int8", wq)
        bq = QuantParams((np.float32(s_in) * scales_c).astype(np.float32), np.zeros(cout, np.int64),
                         0 if cout > 1 else None)
        bname = self.const(f"{name}.bias", bias, "int32", bq)
        self.add_op(name, kind, [x.name, wname, bname], out.name, attrs)
        return out

    def _conv_pad(self, layer, name: str, x: Val, rank: int):
        """[(before, after)] per spatial dim, PyTorch's rule for 'same' (extra on the far side)."""
        k = layer.kernel_size
        if isinstance(layer.padding, str):
            if layer.padding == "valid":
                pads = [(0, 0)] * rank
            else:
                pads = []
                for i in range(rank):
                    total = layer.dilation[i] * (k[i] - 1)
                    pads.append((total // 2, total - total // 2))
        else:
            pads = [(int(p), int(p)) for p in layer.padding]
        return pads[0] if rank == 1 else pads

    def binary(self, node, name: str, m, ins: list[Val]) -> Val:
        if len(ins) != 2:
            self.fail(name, f"{m.op} needs two tensor inputs")
        a, b = ins
        if a.layout != b.layout or (a.perm is None) != (b.perm is None) or (
                a.perm is not None and not np.array_equal(a.perm, b.perm)):
            self.fail(name, f"{m.op} of tensors in different layouts ({a.layout}, {b.layout})")
        out = self.new_tensor(name, self.tshape(node), a.layout, m.out_quant, a.perm)
        if m.op in ("maximum", "minimum"):  # TFLite compares codes: the inputs go onto the output's grid
            self.add_op(name, m.op, [self.on_grid(name, i, v, m.out_quant) for i, v in enumerate(ins)], out.name, {})
            return out
        (sa, za), (sb, zb), (so, zo) = a.quant.qparams(), b.quant.qparams(), m.out_quant.qparams()
        fmt = m.out_quant.fmt
        act, amin, amax = clamp_codes(m.clamp, so, zo, fmt.qmin, fmt.qmax)
        attrs = {"input1_offset": -za, "input2_offset": -zb, "output_offset": zo}
        attrs.update({"add": add_params, "sub": sub_params, "mul": mul_params}[m.op](sa, sb, so))
        attrs.update(activation=act, act_min=amin, act_max=amax)
        self.add_op(name, m.op, [a.name, b.name], out.name, attrs)
        return out

    def cat(self, node, name: str, m, ins: list[Val]) -> Val:
        layout = next((v.layout for v in ins if v.layout != "plain"), "plain")
        if layout in ("nchw", "ncl"):  # a plain piece (e.g. of a channel shuffle) joins conv outputs: NHWC it
            ins = [self.channels_first(f"{name}.in{i}", v, layout) for i, v in enumerate(ins)]
        if any(v.layout != layout or v.perm is not None for v in ins):
            self.fail(name, "cat of tensors in different layouts (or of flattened NCHW tensors)")
        rank = len(ins[0].tshape)
        dim = m.dim % rank
        axis = {"nchw": {0: 0, 1: 3, 2: 1, 3: 2}, "ncl": {0: 0, 1: 3, 2: 2}}.get(layout, {}).get(dim, dim)
        names = [self.on_grid(name, i, v, m.out_quant) for i, v in enumerate(ins)]
        out = self.new_tensor(name, self.tshape(node), layout, m.out_quant)
        self.add_op(name, "concat", names, out.name, {"axis": axis})
        return out

    def on_grid(self, name: str, i: int, v: Val, q) -> str:
        """v's tensor on quantizer q's grid: v itself, or the output of a requantize op `name.requant<i>`
        (the fake-quantized layer requantizes the same way: compress/layers.py on_grid)."""
        (si, zi), (so, zo) = v.quant.qparams(), q.qparams()
        if (np.float32(si), zi) == (np.float32(so), zo):
            return v.name
        r = self.new_tensor(f"{name}.in{i}", v.tshape, v.layout, q, v.perm)
        mult, shift = requant_params(si, so)
        self.add_op(f"{name}.requant{i}", "requantize", [v.name], r.name,
                    {"input_offset": -zi, "output_offset": zo, "multiplier": mult, "shift": shift})
        return r.name

    def softmax(self, node, name: str, m, x: Val) -> Val:
        """A softmax_gemmlowp op over the graph's last dim: torch's last dim of a plain tensor, or the
        channels (dim 1) of an NCHW / NCL one; the last dim of one of those goes to torch's order first."""
        rank = len(x.tshape)
        dim = m.dim % rank
        if x.layout != "plain" and dim == rank - 1 and dim != 1:
            x = self.to_torch_order(name, x)
        last = 1 if x.layout != "plain" else rank - 1
        if dim != last:
            self.fail(name, f"softmax over dim {m.dim} of a {rank}-D tensor is not supported; only over the "
                      "last dim (or the channels of a Conv output)")
        out = self.new_tensor(name, self.tshape(node), x.layout, m.out_quant, x.perm)
        self.add_op(name, "softmax_gemmlowp", [x.name], out.name, m.attrs())
        return out

    def matmul(self, node, name: str, m, ins: list[Val]) -> Val:
        """A batch_matmul op of two activations of one rank, 3 to 5 (dim 0 is the batch), in torch's order."""
        ranks = [len(v.tshape) for v in ins]
        if len(set(ranks)) != 1 or not 3 <= ranks[0] <= 5:
            self.fail(name, f"matmul of tensors of ranks {ranks} is not supported; both need one rank, 3 to 5 "
                      "(the first dim is the batch)")
        if any(v.perm is not None for v in ins):
            self.fail(name, "matmul of a flattened NCHW tensor is not supported")
        a, b = (v if v.layout == "plain" else self.to_torch_order(f"{name}.{side}", v)
                for v, side in zip(ins, ("lhs", "rhs")))
        out = self.new_tensor(name, self.tshape(node), "plain", m.out_quant)
        self.add_op(name, "batch_matmul", [a.name, b.name], out.name, m.attrs())
        return out

    def pool(self, node, name: str, spec: dict, x: Val, kind: str) -> Val:
        from .torch_reduce import export_reduce, is_global_pool

        if spec["type"] == "mean" and not is_global_pool(spec, x):  # over the tokens, the channels, ...
            return export_reduce(self, node, name, x, spec)
        if "rank" in spec:  # a window pool (mean names its dims)
            x = self.channels_first(name, x, "nchw" if spec["rank"] == 2 else "ncl")
        if x.layout == "plain" or x.perm is not None:
            self.fail(name, POOL_NEEDS_CHANNELS_FIRST)
        out_t = self.tshape(node)
        gs = graph_shape(x.tshape, x.layout)
        ih, iw = gs[1], gs[2]
        divisor: dict = {}  # an average that counts the padding (compress/pools.py window_attrs)
        if spec["type"] == "adaptive":
            osz = spec["output_size"]
            osz = osz if isinstance(osz, (list, tuple)) else (osz,) * spec["rank"]
            sizes = (ih, iw) if spec["rank"] == 2 else (iw,)
            osz = tuple(s if o is None else int(o) for o, s in zip(osz, sizes))
            if any(s % o for s, o in zip(sizes, osz)):
                self.fail(name, f"adaptive pooling from {list(sizes)} to {list(osz)} has unequal windows")
            k = tuple(s // o for s, o in zip(sizes, osz))
            kernel, stride, pad = (k if spec["rank"] == 2 else (1,) + k), None, (0, 0, 0, 0)
            stride = kernel
        elif spec["type"] == "mean":
            rank = len(x.tshape)
            dims = {d % rank for d in spec["dims"]}
            spatial = {2, 3} if x.layout == "nchw" else {2}
            if dims != spatial:
                self.fail(name, MEAN_SPATIAL_ONLY)
            kernel, stride, pad = (ih, iw), (ih, iw), (0, 0, 0, 0)
        else:
            divisor = window_attrs(spec, (ih, iw), graph_shape(out_t, x.layout)[1:3])
            kernel, stride, pad = divisor.pop("filter"), divisor.pop("stride"), divisor.pop("pad")
        fmt = x.quant.fmt
        attrs = {"filter": tuple(int(v) for v in kernel), "stride": tuple(int(v) for v in stride),
                 "pad": tuple(int(v) for v in pad), "activation": "NONE", "act_min": fmt.qmin, "act_max": fmt.qmax,
                 **divisor}
        pooled_t = out_t
        if spec["type"] == "mean" and not spec["keepdim"]:
            pooled_t = x.tshape[:2] + (1,) * (len(x.tshape) - 2)
        out = self.new_tensor(name, pooled_t, x.layout, x.quant)
        self.add_op(name, kind, [x.name], out.name, attrs)
        if pooled_t != out_t:  # mean without keepdim: [N, C, 1, 1] -> [N, C]
            flat = self.new_tensor(f"{name}.flat", out_t, "plain", x.quant)
            self.add_op(f"{name}.reshape", "reshape", [out.name], flat.name, {})
            return flat
        return out

    def layer_norm(self, node, name: str, mod, x: Val) -> Val:
        """LayerNorm over the last torch dim of a plain tensor ([N, T, D] tokens): one layer_norm op."""
        if x.layout != "plain" or x.perm is not None:
            what = "flattened NCHW" if x.perm is not None else x.layout.upper()
            self.fail(name, f"LayerNorm over the last dim of a {what} tensor is not supported; it needs a plain "
                            "tensor whose last dim is the features ([N, T, D])")
        out = self.new_tensor(name, (1,) + self.tshape(node)[1:], "plain", mod.out_quant)
        self.add_op(name, "layer_norm", [x.name], out.name, mod.int_attrs())
        return out

    def reshape(self, node, name: str, x: Val) -> Val:
        out_t = self.tshape(node)
        out_t = (1,) + out_t[1:] if out_t else out_t
        if out_t == x.tshape:
            return x
        if x.perm is not None:
            self.fail(name, "reshaping a flattened NCHW tensor again is not supported")
        if x.layout != "plain" and out_t != (x.tshape[0], int(np.prod(x.tshape[1:]))):
            x = self.to_torch_order(name, x)  # a view that is not a flatten mixes dims in torch's order
        if x.layout == "plain":
            if len(out_t) == 4 and (out_t[1] == 1 or out_t[2] * out_t[3] == 1):
                layout = "nchw"  # the memory orders agree, no data movement
            else:
                layout = "plain"  # a conv or pool that reads it transposes it first (channels_first)
            out = self.new_tensor(name, out_t, layout, x.quant)
            self.add_op(name, "reshape", [x.name], out.name, {})
            return out
        n, c = x.tshape[0], x.tshape[1]
        spatial = int(np.prod(x.tshape[2:]))
        perm = None
        if spatial > 1 and c > 1:
            # graph order is (spatial, channel); torch's flat index is channel * spatial + position
            pos, ch = np.meshgrid(np.arange(spatial), np.arange(c), indexing="ij")
            perm = (ch * spatial + pos).reshape(-1)
        out = self.new_tensor(name, out_t, "plain", x.quant, perm)
        self.add_op(name, "reshape", [x.name], out.name, {})
        return out

    def interp_table(self, node, name: str, m, x: Val) -> Val:
        """A learnable per-feature activation as a lut_interp op: its features must be the graph's last dim."""
        rank = len(x.tshape)
        dim = m.fn.dim % rank
        last = {"nchw": 1, "ncl": 1}.get(x.layout, rank - 1)
        if dim != last or x.perm is not None:
            self.fail(name, f"{m.label} over dim {m.fn.dim} of a {x.layout} {list(x.tshape)} tensor; the tables "
                      "need the features on the channel dim (NCHW/NCL) or the last dim")
        if m.fn.features != x.tshape[dim]:
            self.fail(name, f"{m.label} has {m.fn.features} features, its input {x.tshape[dim]}")
        out = self.new_tensor(name, self.tshape(node), x.layout, m.out_quant)
        table = m.table().numpy()
        lo, hi = m.out_quant.fmt.qmin, m.out_quant.fmt.qmax
        self.add_op(name, "lut_interp", [x.name], out.name,
                    {"table": np.clip(table, lo, hi).astype(np.int8).reshape(-1), "points": m.points})
        return out

    # -- layouts: a permuted tensor is "plain" (the graph holds it in torch's order) -------
    def permute(self, node, name: str, x: Val) -> Val:
        """permute / transpose / swapaxes: one transpose op in the graph's order, none when the
        graph already holds the result (x.permute(0, 2, 3, 1) of an NCHW tensor is its NHWC self)."""
        if x.perm is not None:
            self.fail(name, "permuting a flattened NCHW tensor is not supported")
        rank = len(x.tshape)
        perm = torch_perm(node, rank)
        if x.layout == "ncl":  # [N, 1, L, C] -> [N, L, C]: the same bytes, torch dims (0, 2, 1)
            x = self._alias(f"{name}.squeeze", x, (x.tshape[0], x.tshape[2], x.tshape[1]), "plain")
            perm = tuple((0, 2, 1)[p] for p in perm)
        order = GRAPH_ORDER.get(x.layout, tuple(range(rank)))  # graph dim i holds torch dim order[i]
        q = tuple(order.index(p) for p in perm)
        out_t = self.tshape(node)
        out_t = (1,) + out_t[1:]
        if q == tuple(range(rank)):
            return Val(x.name, out_t, "plain", x.quant)
        out = self.new_tensor(name, out_t, "plain", x.quant)
        self.add_op(name, "transpose", [x.name], out.name, {"perm": q})
        return out

    def slice(self, node, name: str, x: Val) -> Val:
        """x[:, a:b], x[..., a:b:s], narrow, a piece of chunk / split: one strided_slice op in the
        graph's order (torch_slices.py); a chunk / split itself stands for its input until a piece is taken."""
        if node.target in TUPLES:
            return x
        if x.perm is not None:
            self.fail(name, "slicing a flattened NCHW tensor is not supported")
        attrs = graph_attrs(name, node, x.tshape, x.layout)
        out = self.new_tensor(name, self.tshape(node), x.layout, x.quant)
        self.add_op(name, "strided_slice", [x.name], out.name, attrs)
        return out

    def channels_first(self, name: str, x: Val, layout: str) -> Val:
        """A plain [N, C, H, W] (or [N, C, L]) tensor as the graph's NHWC (or [N, 1, L, C])."""
        if x.layout != "plain" or x.perm is not None or len(x.tshape) != {"nchw": 4, "ncl": 3}[layout]:
            return x
        rank = len(x.tshape)
        perm = (0, 2, 3, 1) if rank == 4 else (0, 2, 1)
        nhwc = self.new_tensor(f"{name}.nhwc", tuple(x.tshape[p] for p in perm), "plain", x.quant)
        self.add_op(f"{name}.to_channels_last", "transpose", [x.name], nhwc.name, {"perm": perm})
        if rank == 4:
            return Val(nhwc.name, x.tshape, "nchw", x.quant)
        return self._alias(f"{name}.unsqueeze", Val(nhwc.name, x.tshape, "plain", x.quant), x.tshape, "ncl")

    def as_layout(self, name: str, x: Val, layout: str) -> Val:
        """x in `layout`: a model output is handed over in the layout its rank implies
        (Model.output_codes reads it so), whatever order the last op left it in."""
        if x.layout == layout:
            return x
        return self.to_torch_order(name, x) if layout == "plain" else self.channels_first(name, x, layout)

    def to_torch_order(self, name: str, x: Val) -> Val:
        """An NCHW (or NCL) tensor as a plain one, its bytes in torch's order (for a view that mixes dims)."""
        if x.layout == "ncl":
            x = self._alias(f"{name}.squeeze", x, (x.tshape[0], x.tshape[2], x.tshape[1]), "plain")
            perm, tshape = (0, 2, 1), (x.tshape[0], x.tshape[2], x.tshape[1])
        else:
            perm, tshape = (0, 3, 1, 2), x.tshape
        out = self.new_tensor(f"{name}.channels_first", tshape, "plain", x.quant)
        self.add_op(f"{name}.to_channels_first", "transpose", [x.name], out.name, {"perm": perm})
        return out

    def _alias(self, name: str, x: Val, tshape: tuple, layout: str) -> Val:
        """A reshape that keeps the bytes: x seen as `tshape` in `layout`."""
        out = self.new_tensor(name, tshape, layout, x.quant)
        self.add_op(name, "reshape", [x.name], out.name, {})
        return out


GRAPH_ORDER = {"nchw": (0, 2, 3, 1)}  # graph dim i holds torch dim GRAPH_ORDER[i]


def torch_perm(node: fx.Node, rank: int) -> tuple[int, ...]:
    """The permutation a permute / transpose / swapaxes call applies (output dim k = input dim perm[k])."""
    args = list(node.args[1:])
    if node.target in ("permute", torch.permute):
        dims = node.kwargs.get("dims", args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args)
        return tuple(int(d) % rank for d in dims)
    a = node.kwargs.get("dim0", node.kwargs.get("axis0", args[0] if args else None))
    b = node.kwargs.get("dim1", node.kwargs.get("axis1", args[1] if len(args) > 1 else None))
    perm = list(range(rank))
    perm[int(a) % rank], perm[int(b) % rank] = perm[int(b) % rank], perm[int(a) % rank]
    return tuple(perm)


def model_to_graph(model, *example_inputs: torch.Tensor) -> Graph:
    """The integer Graph of a transformed, calibrated Model (batch 1 of each example input's shape)."""
    return graph_and_tensors(model, *example_inputs)[0]


def graph_and_tensors(model, *example_inputs: torch.Tensor) -> tuple[Graph, dict]:
    """model_to_graph, plus {node of model.body: Val} for each node whose value is a graph tensor
    (in graph order), which is how dmxgen.save compares the two layer by layer. Inputs are named
    after forward()'s parameters, outputs as forward() returns them (frontends/torch_names.py)."""
    from .torch_names import name_outputs

    model.check_calibrated("export")
    examples = example_tensors(model.body, example_inputs)
    model.example_shape, model.example_shapes = tuple(examples[0].shape), tuple(tuple(x.shape) for x in examples)
    exporter = _Exporter(model, examples)
    graph = exporter.run()
    names = [n for n, _ in output_names(returned(model.body))]
    if hasattr(model, "exit_graph"):  # an EarlyExit's outputs keep their layers' names (graph/early_exit.py)
        names = [None] * len(names)
    name_outputs(graph, exporter.vals, names)
    graph.validate()
    return graph, exporter.vals


set_graph_builder(model_to_graph)  # Model.to_graph and its first-batch export check land here
