"""Per-op template values for the HLS layer headers (templates/hls/layers/<kind>.h.j2).

Each builder, registered against its op kind with `@hls_builder`, turns one
integer-graph op into plain numbers and ROM arrays; templates/hls/layers/<kind>.h.j2
prints them. Weight formats come from the storage policy the C
target uses (`codecs.policy.assign`), so the HLS kernels read exactly the
arrays of docs/formats.md that the C kernels read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..codecs.policy import Choice
from ..errors import DmxError
from ..graph import Graph, Op
from ..ops import SPECS, Registry
from ..ops.add import kernel_constants
from ..ops.avg_pool2d import window_ends
from ..graph import loops

# kind -> its builder; `alias=True`: the op moves no data (its output names its input); `dtypes`: the
# activation dtypes (OpSpec.activation_dtype) its kernel runs, which hls_plan.py checks and the support
# table prints.
HLS_BUILDERS = Registry("hls", "HLS kernel")
INT16 = ("int8", "int16")  # the kinds whose kernels also run TFLite's 16x8 (int16 activations)


KERNEL_HEADERS = Path(__file__).resolve().parents[2] / "templates" / "hls" / "kernels"
PARAMS_LAYER = "layers/_params.h.j2"  # the layer header of every kind printed from its kernel_params
HEADERS = {"arg_max": "dmx_arg.h", "arg_min": "dmx_arg.h"}  # kernel headers not named dmx_<kind>.h


def hls_builder(kind: str, alias: bool = False, template: str | None = None,
                dtypes: tuple[str, ...] = ("int8",)) -> Callable:
    """Register `builder(OpContext) -> dict` (the layer template's values) for `kind`, whose kernel
    runs the activation dtypes `dtypes`; the layer header is templates/hls/layers/<kind>.h.j2 unless
    `template` names another."""
    return HLS_BUILDERS.register(kind, alias=alias, template=template or f"layers/{kind}.h.j2", dtypes=dtypes)


@dataclass
class CArray:
    """A `static const` ROM array: numpy dtype name, values (never empty) and declared length."""

    name: str
    dtype: str
    values: list
    length: int


def rom(name: str, values: Any, dtype: str, length: int | None = None) -> CArray:
    """Values as a ROM array, zero-padded to `length` (and to at least one element: C++ has no empty arrays)."""
    flat = np.asarray(values).reshape(-1).astype(dtype)
    length = max(1, flat.size if length is None else length)
    padded = np.zeros(length, dtype=dtype)
    padded[:flat.size] = flat
    return CArray(name, np.dtype(dtype).name, padded.tolist(), length)


class OpContext:
    """What a builder needs: the graph, the op, and the backend options."""

    def __init__(self, graph: Graph, op: Op, storage: Choice | None, reuse_factor: int):
        self.graph, self.op = graph, op
        self.storage, self.reuse_factor = storage, reuse_factor  # storage: the op's weights, from codecs.policy

    def shape(self, index: int) -> tuple[int, ...]:
        return self.graph.tensors[self.op.inputs[index]].shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.graph.tensors[self.op.outputs[0]].shape

    @property
    def where(self) -> str:
        return f"HLS backend: layer {self.op.name!r} ({self.op.kind})"

    def fail(self, msg: str) -> DmxError:
        return DmxError(f"{self.where}: {msg}")

    def shape4(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape padded to the 4 dims the layer templates print (DmxError beyond 4)."""
        return loops.padded_shape(shape, self.where)

    @property
    def is_16x8(self) -> bool:
        """int16 activations (TFLite's 16x8): an int64 bias and int64 accumulators."""
        return self.graph.tensors[self.op.inputs[0]].dtype == "int16"

    def per_channel(self, key: str, channels: int) -> np.ndarray:
        return np.broadcast_to(np.atleast_1d(np.asarray(self.op.attrs[key], dtype=np.int64)), (channels,))

    def unroll(self, reduction: int) -> int:
        """Parallel multipliers of a reduction loop: each is reused `reuse_factor` times."""
        return max(1, -(-reduction // self.reuse_factor))


def _requant_arrays(c: OpContext, channels: int) -> dict:
    """Bias (int32; int64 for 16x8, whose accumulators are int64), multipliers and shifts as ROMs."""
    bias_name = c.op.inputs[2] if len(c.op.inputs) > 2 else ""
    wide = "int64" if c.is_16x8 else "int32"
    bias = c.graph.tensors[bias_name].data if bias_name else np.zeros(channels, np.int64)
    return {"bias": rom("bias", bias, wide), "acc_ctype": f"{wide}_t",
            "rounding": _rounding(c),
            "multiplier": rom("multiplier", c.per_channel("multiplier", channels), "int32"),
            "shift": rom("shift", c.per_channel("shift", channels), "int8")}


def _activation(c: OpContext) -> dict:
    return {"act_min": int(c.op.attrs["act_min"]), "act_max": int(c.op.attrs["act_max"])}


def _rounding(c: OpContext) -> str:
    """double, single, away (LiteRT's FC), or reduced (16x8's 64-bit MultiplyByQuantizedMultiplier; dmx_fixedpoint.h)."""
    rounding = c.op.attrs.get("rounding", "double")
    if rounding not in ("single", "away", "double", "reduced"):
        raise c.fail(f"requantization rounding {rounding!r} has no HLS kernel (single, away, double, reduced)")
    return rounding


def encode_weights(c: OpContext) -> dict:
    """The weight matrix in the format the storage policy chose (codecs/policy.py, as for the C target)."""
    chosen = c.storage
    enc = chosen.enc
    rows, cols = enc.shape
    out = {"format": enc.format, "rows": rows, "cols": cols, "nbytes": int(enc.nbytes), "reason": chosen.reason,
           "nnz": int(np.count_nonzero(chosen.matrix)), "sparsity": float(chosen.sparsity), "unroll": c.unroll(cols)}
    a = enc.arrays
    if enc.format == "dense":
        out["arrays"] = [rom("w_values", a["values"], "int8")]
    elif enc.format == "csr":
        nnz = max(1, a["values"].size)
        out.update(nnz_len=nnz, ptr_dtype=a["row_ptr"].dtype.name,
                   arrays=[rom("w_values", a["values"], "int8", nnz), rom("w_col_idx", a["col_idx"], "uint16", nnz),
                           rom("w_row_ptr", a["row_ptr"], a["row_ptr"].dtype.name)])
    elif enc.format != "dcsr":  # policy.HLS has gather=False, so only a hand-made policy gets here
        raise c.fail(f"weights stored as {enc.format}: the HLS kernels read dense, csr and dcsr")
    else:
        groups = max(1, int(a["group_minimums"].size))
        pairs = (groups + 1) // 2
        out.update(values_len=max(1, a["values"].size), groups_len=groups, masks_len=max(1, a["bitmasks"].size),
                   arrays=[rom("w_values", a["values"], "int8"),
                           rom("w_delta_indices", a["delta_indices"], "uint8", 16 * pairs),
                           rom("w_bitmaps", a["bitmaps"], "uint8", pairs),
                           rom("w_bitmasks", a["bitmasks"], "uint16"),
                           rom("w_group_minimums", a["group_minimums"], "int8", groups),
                           rom("w_row_offsets", a["row_offsets"], "int16"),
                           rom("w_nnze", a["nnze"], "uint32")])
    return out


def _conv_geometry(c: OpContext) -> dict:
    n, in_h, in_w, in_c = c.shape(0)
    _, out_h, out_w, out_c = c.out_shape
    w = c.graph.weights(c.op).shape
    k_h, k_w = (w[1], w[2])
    at = c.op.attrs
    return {"n": n, "in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w, "out_c": out_c,
            "k_h": k_h, "k_w": k_w, "stride_h": at["stride"][0], "stride_w": at["stride"][1],
            "dil_h": at["dilation"][0], "dil_w": at["dilation"][1], "pad_top": at["pad"][0],
            "pad_left": at["pad"][1], "input_offset": int(at["input_offset"]),
            "output_offset": int(at["output_offset"])}


@hls_builder("conv2d", dtypes=INT16)
def conv2d(c: OpContext) -> dict:
    geo = _conv_geometry(c)
    return {**geo, **_activation(c), **_requant_arrays(c, geo["out_c"]), "weights": encode_weights(c)}


@hls_builder("depthwise_conv2d", dtypes=INT16)
def depthwise_conv2d(c: OpContext) -> dict:
    geo = _conv_geometry(c)
    weights = encode_weights(c)  # always dense: the kernel walks taps x channels
    weights["unroll"] = c.unroll(geo["k_h"] * geo["k_w"])
    return {**geo, **_activation(c), **_requant_arrays(c, geo["out_c"]), "weights": weights,
            "depth_multiplier": int(c.op.attrs.get("depth_multiplier", 1))}


@hls_builder("fully_connected", dtypes=INT16)
def fully_connected(c: OpContext) -> dict:
    rows, cols = c.graph.weights(c.op).shape
    at = c.op.attrs
    return {"batches": int(np.prod(c.shape(0))) // cols, "rows": rows, "cols": cols,
            "input_offset": int(at["input_offset"]), "output_offset": int(at["output_offset"]),
            **_activation(c), **_requant_arrays(c, rows), "weights": encode_weights(c)}


def _binary(c: OpContext, keys: tuple[str, ...]) -> dict:
    walk = loops.broadcast(c.shape4(c.out_shape), c.shape4(c.shape(0)), c.shape4(c.shape(1)))
    ctx: dict = {"dims": list(walk.n), "roms": [], "args": []}
    for side, index in (("a", 0), ("b", 1)):
        t = c.graph.tensors[c.op.inputs[index]]
        ctx[f"{side}_strides"] = list(walk.strides[index])
        ctx[f"{side}_size"] = t.size
        if t.is_const:  # a ROM inside the layer; run() takes only the activations
            if t.dtype not in INT16:
                raise c.fail(f"constant input {t.name!r} is {t.dtype}; only int8 and int16 are supported")
            ctx["roms"].append(rom(f"const_{side}", t.data, t.dtype))
            ctx["args"].append(f"const_{side}")
        else:
            ctx["args"].append(f"in{len(ctx['args']) - len(ctx['roms'])}")
    ctx.update({k: int(c.op.attrs[k]) for k in keys})
    return {**ctx, **_activation(c)}


@hls_builder("add", dtypes=INT16)
def add(c: OpContext) -> dict:
    """The general kernel's constants (ops/add.py kernel_constants: int16's power-of-two path is the
    general one with exact constants), under the names of add.h.j2."""
    k = kernel_constants(c.op.a)
    names = {"input1_offset": "in1_offset", "input2_offset": "in2_offset", "output_offset": "out_offset",
             "left_shift": "left_shift", "input1_multiplier": "in1_mult", "input1_shift": "in1_shift",
             "input2_multiplier": "in2_mult", "input2_shift": "in2_shift", "output_multiplier": "out_mult",
             "output_shift": "out_shift"}
    return {**_binary(c, ()), **{ours: int(k[theirs]) for ours, theirs in names.items()}}


@hls_builder("mul", dtypes=INT16)
def mul(c: OpContext) -> dict:
    return _binary(c, ("input1_offset", "input2_offset", "output_offset", "output_multiplier", "output_shift"))


@hls_builder("avg_pool2d", dtypes=INT16)
@hls_builder("max_pool2d", dtypes=INT16)
def pool(c: OpContext) -> dict:
    n, in_h, in_w, ch = c.shape(0)
    _, out_h, out_w, _ = c.out_shape
    at = c.op.attrs
    return {"n": n, "in_h": in_h, "in_w": in_w, "c": ch, "out_h": out_h, "out_w": out_w,
            "k_h": at["filter"][0], "k_w": at["filter"][1], "stride_h": at["stride"][0],
            "stride_w": at["stride"][1], "pad_top": at["pad"][0], "pad_left": at["pad"][1], **_activation(c),
            **_pool_window(c.op, in_h, in_w)}


def _pool_window(op, in_h: int, in_w: int) -> dict:
    """An avg_pool2d with divisor "window": the padded extent its divisor counts (win_h, win_w)."""
    if op.kind != "avg_pool2d" or op.a.divisor != "window":
        return {}
    win_h, win_w = window_ends(op.a, in_h, in_w)
    return {"win_h": win_h, "win_w": win_w}


def _rows(c: OpContext) -> dict:
    shape = c.shape(0)
    depth = shape[-1] if shape else 1
    return {"rows": int(np.prod(shape)) // depth, "depth": depth}


@hls_builder("softmax")
def softmax(c: OpContext) -> dict:
    at = c.op.attrs
    return {**_rows(c), "table": [float(v) for v in np.asarray(at["table"], dtype=np.float32)],
            "output_scale": float(np.float32(at["output_scale"]))}


@hls_builder("softmax_gemmlowp")
def softmax_gemmlowp(c: OpContext) -> dict:
    return {**_rows(c), **{k: int(c.op.attrs[k]) for k in ("input_multiplier", "input_left_shift", "diff_min")}}


@hls_builder("requantize", dtypes=INT16)
def requantize(c: OpContext) -> dict:
    at = c.op.attrs
    return {"size": c.graph.tensors[c.op.outputs[0]].size,
            **{k: int(at[k]) for k in ("input_offset", "output_offset", "multiplier", "shift")}}


@hls_builder("reshape", alias=True, dtypes=INT16)
def reshape(c: OpContext) -> dict:
    return {}  # never a layer: hls_plan.py makes its output another name for its input


def copy_walk(walk: loops.Walk, where: str) -> dict:
    """A (src, dst) copy walk, collapsed to 4 loops, as dmx_copy.h's walk struct prints it."""
    w = walk.collapse(where)
    (src, dst), (src_offset, dst_offset) = w.strides, w.offsets
    return {"n": list(w.n), "src_offset": src_offset, "src_stride": list(src), "dst_offset": dst_offset,
            "dst_stride": list(dst)}


@hls_builder("pad", dtypes=INT16)
def pad(c: OpContext) -> dict:
    value = c.op.attrs["value"]
    dtype = c.graph.tensors[c.op.outputs[0]].dtype
    info = np.iinfo(dtype)
    if not float(value).is_integer() or not info.min <= int(value) <= info.max:
        raise c.fail(f"padding value {value!r} is not an {dtype}")
    before = tuple(int(p[0]) for p in c.op.attrs["paddings"])
    return {"walk": copy_walk(loops.pad(c.shape(0), c.out_shape, before), c.where),
            "in_size": loops.size(c.shape(0)), "out_size": loops.size(c.out_shape), "value": int(value)}


def _reduction(c: OpContext) -> dict:
    shape = c.shape(0)
    dims = c.shape4(shape)
    lead = len(dims) - len(shape)
    walk = loops.reduction(dims, tuple(a + lead for a in c.op.attrs["axes"]))
    return {"dims": list(walk.n), "out_strides": list(walk.strides[0]),
            "out_size": c.graph.tensors[c.op.outputs[0]].size}


@hls_builder("reduce_max")
def reduce_max(c: OpContext) -> dict:
    return _reduction(c)


@hls_builder("mean", dtypes=INT16)
def mean(c: OpContext) -> dict:
    at = c.op.attrs
    return {**_reduction(c), "count": int(at["count"]), "input_offset": int(at["input_offset"]),
            "output_offset": int(at["output_offset"]), "multiplier": int(at["mean_multiplier"]),
            "shift": int(at["mean_shift"])}


def from_params(c: OpContext) -> dict:
    """A kind's kernel_params as the generic layer header prints them: scalars, int tuples (as
    name0, name1, ...), nested structs and copy walks in its config; arrays as ROMs passed after
    the activations (templates/hls/layers/_params.h.j2)."""
    sizes = [c.graph.tensors[c.op.inputs[k]].size for k in c.op.spec.activation_inputs(c.op)]
    out_size = c.graph.tensors[c.op.outputs[0]].size
    roms: list[CArray] = []

    def scalar(name: str, v) -> dict:
        v = int(v)
        return {"kind": "int", "name": name, "value": v, "ctype": "int32_t" if -2**31 <= v < 2**31 else "int64_t"}

    def members(params: dict) -> list[dict]:
        out = []
        for name, v in params.items():
            if isinstance(v, loops.Walk):
                v = [v]
            if isinstance(v, list) and v and isinstance(v[0], loops.Walk):
                for k, w in enumerate(v):
                    walk = copy_walk(w, c.where)
                    walk.update(kind="walk", name=name if len(v) == 1 else f"{name}{k}", src_size=sizes[k],
                                dst_size=out_size)
                    out.append(walk)
            elif isinstance(v, np.ndarray):
                roms.append(rom(name, v, v.dtype.name))
            elif isinstance(v, dict):
                out.append({"kind": "struct", "name": name, "members": members(v)})
            elif isinstance(v, (list, tuple)):
                out += [scalar(f"{name}{k}", x) for k, x in enumerate(v)]
            else:
                out.append(scalar(name, v))
        return out

    body = members(c.op.spec.kernel_params(c.graph, c.op))
    # the kernel takes every activation input in order; run() only the computed ones, a constant is a ROM,
    # and a state (spec.state_inputs) a static array of the layer kept across calls, reset from its ROM
    args, const_roms, states = [], [], []
    for k in c.op.spec.activation_inputs(c.op):
        t = c.graph.tensors[c.op.inputs[k]]
        if k in c.op.spec.state_inputs:
            if not t.is_const:
                raise c.fail(f"state {t.name!r} is not a constant holding its reset values")
            const_roms.append(rom(f"reset_in{k}", t.data, t.dtype))
            states.append({"name": f"state_in{k}", "reset": const_roms[-1], "tensor": t.name})
            args.append(states[-1]["name"])
        elif t.is_const:
            const_roms.append(rom(f"const_in{k}", t.data, t.dtype))
            args.append(const_roms[-1].name)
        else:
            args.append(f"in{len(args) - len(const_roms)}")
    # run()'s argument types: input_t (the first computed input's), or their own (gather's int32 / int64 indices)
    computed = [c.graph.tensors[c.op.inputs[k]].dtype for k in c.op.spec.activation_inputs(c.op)
                if k not in c.op.spec.state_inputs and not c.graph.tensors[c.op.inputs[k]].is_const]
    in_types = ["input_t" if d == computed[0] else f"{d}_t" for d in computed]
    return {"members": body, "roms": roms, "in_sizes": sizes, "out_size": out_size, "header": kernel_header(c.op.kind),
            "args": args, "const_roms": const_roms, "states": states, "in_types": in_types}


def kernel_header(kind: str) -> str:
    return HEADERS.get(kind, f"dmx_{kind}.h")


def _register_from_params() -> None:
    """Each kind printed from its spec's kernel_params whose kernel header exists gets `from_params`,
    for the integer dtypes its spec lists (those kernels take data_T / res_T and wide constants as
    their ROMs' types, so int16 runs the int8 code)."""
    for kind, spec in SPECS.items():
        if spec.printed_from_params and kind not in HLS_BUILDERS and (KERNEL_HEADERS / kernel_header(kind)).exists():
            dtypes = tuple(d for d in spec.dtypes if d in INT16)
            hls_builder(kind, template=PARAMS_LAYER, dtypes=dtypes)(from_params)


_register_from_params()
