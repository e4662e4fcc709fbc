"""Per-op resolution for the C backend: which kernel, which constants, which pointers.

One method per op kind, registered against the kind with `@c_resolver`, reads
the op's integer attrs (set by a frontend or a pass) and fills a Layer: the
kernel to call, its parameter struct as typed fields, the const arrays of
headers/<layer>.h and the pointer arguments into the arena or the caller's
buffers. Templates print it. The registration also names the kernel templates
the method may ask for (their order in kernels.h follows it: c_render.py) and
the scratch bytes the kernel needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..codecs.policy import EXPORT, Choice, PolicyError, StoragePolicy, assign
from ..errors import DmxError
from ..graph import Graph, Op
from ..ops import SPECS, Registry
from ..ops.add import kernel_constants
from ..ops.avg_pool2d import window_ends
from ..ops.depthwise_conv2d import plane_bytes, plane_shape
from ..plan import Plan
from ..graph import loops
from . import c_16x8
from .c_names import c_comment
from .c_params import Array, F32, F64, Field, Structs, Sym, check_struct, declared_structs, fields

INT32 = (-(2**31), 2**31 - 1)
# kind -> the Resolver method that prints it, with its kernel templates and scratch.
C_RESOLVERS = Registry("c", "C kernel")
INLINE, OUT_OF_LINE = True, False  # static inline in kernels.h, or out of line in kernels.c
MATVECS = ("matvec_dense", "matvec_csr", "matvec_dcsr", "matvec_dcsr_gather")  # helpers (c_render.HELPERS)
DTYPE_SUFFIX = {"int8": "s8", "int16": "s16", "float32": "f32"}  # C kernel names: dmx_<kind>_<suffix>
# dmx_requant_t.single_rounding (2: 16x8 layers only; 3: one rounding, ties away from zero)
ROUNDING = {"double": 0, "single": 1, "reduced": 2, "away": 3}
KERNEL_TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "c" / "kernels"


def c_resolver(kind: str, kernels: dict[str, bool], calls: tuple[str, ...] = (),
               scratch: Callable[[Graph, Op], int] | None = None, from_params: bool = False) -> Callable:
    """Register a Resolver method for `kind`.

    kernels: the templates (templates/c/kernels/<name>.c.j2) this kind owns, each INLINE or
    OUT_OF_LINE; a layer whose method sets a kernel but no `layer.templates` (no format
    variants to choose) is printed with these. calls: the helper templates its kernels call; scratch(graph, op): the bytes
    of arena the kernel works in while it runs.
    """
    return C_RESOLVERS.register(kind, kernels=kernels, calls=calls, scratch=scratch, from_params=from_params)


def _im2col_bytes(graph: Graph, op: Op) -> int:
    """One output pixel's receptive field (a 16x8 layer's int16 patch), none for a 1x1 convolution that reads
    its input in place; an int8 layer: two pixels' patches and their copy interleaved by 16-byte chunk
    (2 * ceil16(K), the MVE kernel's pixel pairs: templates/c/kernels/conv2d_mve.c.j2)."""
    _, kh, kw, cin = graph.tensors[op.inputs[1]].shape
    itemsize = graph.tensors[op.inputs[0]].itemsize
    direct, k = is_direct(graph, op), kh * kw * cin
    if itemsize != 1:
        return 0 if direct else k * itemsize
    return 2 * (-(-k // 16) * 16) + (0 if direct else 2 * k)


def _depthwise_plane(graph: Graph, op: Op) -> tuple[int, int] | None:
    """The channel plane of an int8 depthwise layer's MVE kernel (ops/depthwise_conv2d.py), or None."""
    if graph.tensors[op.inputs[0]].dtype != "int8" or op.attrs.get("rounding", "double") != "double":
        return None  # int16 has its own kernel; the plane's requantization is TFLite's double rounding
    _, kh, kw, _ = graph.tensors[op.inputs[1]].shape
    at = op.attrs
    return plane_shape(graph.tensors[op.inputs[0]].shape, graph.tensors[op.outputs[0]].shape, (kh, kw),
                       at["stride"], at["dilation"], at["pad"])


def _depthwise_plane_bytes(graph: Graph, op: Op) -> int:
    plane = _depthwise_plane(graph, op)
    return 0 if plane is None else plane_bytes(*plane, op.attrs["stride"])


def _mean_sums_bytes(graph: Graph, op: Op) -> int:
    return 4 * graph.tensors[op.outputs[0]].size  # one int32 sum per output value


def _lstm_bytes(graph: Graph, op: Op) -> int:
    """One batch row's four int16 gates and its int8 hidden values (before projection)."""
    return 9 * graph.tensors[op.inputs[1]].shape[0]


def _gru_bytes(graph: Graph, op: Op) -> int:
    """One batch row's state on the int8 output grid (the recurrent matmul's input)."""
    return graph.tensors[op.inputs[1]].shape[0]


@dataclass
class Ref:
    """A pointer argument: into the arena, the caller's buffers, a const array, or NULL."""

    kind: str  # arena | input | output | const | null | int
    offset: int = 0
    symbol: str = ""
    ctype: str = "int8_t"
    value: int = 0
    items: list[Ref] = field(default_factory=list)  # kind "list": an array of pointers


@dataclass
class Layer:
    index: int
    name: str
    ident: str
    kind: str
    comment: str = ""
    kernel: str | None = None  # None: no code (a reshape that aliases its input)
    struct_type: str | None = None
    fields: list[Field] = field(default_factory=list)
    arrays: list[Array] = field(default_factory=list)
    args: list[Ref] = field(default_factory=list)
    out: Ref | None = None
    out_bytes: int = 0
    templates: list[tuple[str, str | None]] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return f"dmx_l_{self.ident}"

    def array(self, name: str, values: np.ndarray, role: str = "params", comment: str = "") -> Sym:
        """Add a const array to this layer's header; empty arrays become NULL."""
        values = np.ascontiguousarray(values).reshape(-1)
        if values.size == 0:
            return Sym(None)
        a = Array(f"{self.symbol}__{name}", values, role, c_comment(comment))
        self.arrays.append(a)
        return Sym(a.symbol)

    @property
    def weight_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays if a.role == "weights")

    @property
    def param_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays if a.role == "params")


class Resolver:
    """Turns each op of a planned graph into a Layer, its weights stored as `policy` decides
    (codecs/policy.py; the C backend's policies pack INT4, as policy.EXPORT does)."""

    def __init__(self, graph: Graph, plan: Plan, policy: StoragePolicy = EXPORT):
        self.g, self.plan = graph, plan
        try:
            self.storage = assign(graph, policy)  # every weight tensor's format, decided once
        except PolicyError as e:
            raise DmxError(str(e)) from None

    # -- pointers -----------------------------------------------------------
    def ref(self, layer: Layer, name: str, role: str = "in") -> Ref:
        t = self.g.tensors[name]
        ctype = {"int8": "int8_t", "float32": "float"}.get(t.dtype)
        spec = SPECS[layer.kind]  # the indices arg_max writes and gather reads
        if t.dtype in ("int32", "int64") and any(getattr(spec, k, False) for k in ("writes_indices", "reads_indices")):
            ctype = f"{t.dtype}_t"
        if t.dtype == "int16" and "int16" in SPECS[layer.kind].dtypes:  # the kinds with int16 kernels
            ctype = "int16_t"
        if ctype is None:
            raise DmxError(f"layer {layer.name!r} ({layer.kind}): tensor {name!r} is {t.dtype}; "
                           "the C backend handles int8 activations (int16 where the kind has int16 kernels, "
                           "float32 only at the model's I/O)")
        if t.is_const:
            sym = layer.array(role, t.data.astype(t.dtype), "params", f"constant {name}")
            return Ref("const", symbol=sym.symbol or "NULL", ctype=ctype)
        storage = self.plan.storage(name)
        if storage == "arena":
            return Ref("arena", offset=self.plan.offset(name), ctype=ctype)
        return Ref(storage, symbol=name, ctype=ctype)  # c.py turns the tensor into its dmx_model_run parameter

    def scratch_ref(self, index: int, ctype: str = "int8_t") -> Ref:
        off = self.plan.scratch_offset(index)
        return Ref("null") if off is None else Ref("arena", offset=off, ctype=ctype)

    # -- shared pieces ----------------------------------------------------------
    def requant(self, layer: Layer, op: Op) -> list[Field]:
        at = op.attrs
        mult = np.asarray(at["multiplier"], dtype=np.int64).reshape(-1)
        shift = np.asarray(at["shift"], dtype=np.int64).reshape(-1)
        per_channel = bool(np.any(mult != mult[0]) or np.any(shift != shift[0]))
        if not per_channel:
            mult, shift = mult[:1], shift[:1]
        rounding = ROUNDING[at.get("rounding", "double")]
        mult_sym = layer.array("mult", mult.astype(np.int32))
        shift_sym = layer.array("shift", shift.astype(np.int32))
        # The MVE kernels' split (dmx_requant_t): VQRDMULH after a left shift, VRSHL by `right`; single
        # rounding as VMULH + VRSHL by shift + 1 when every shift <= -2 (a 64-bit product's rounding shift
        # by 31 - shift >= 33 then only needs the product's high word; ties away from zero also its low word).
        left = right = Sym(None)
        if rounding == 0:
            if np.any(shift > 0):
                left = layer.array("left", np.maximum(shift, 0).astype(np.int32), comment="MVE: max(shift, 0)")
                right = layer.array("right", np.minimum(shift, 0).astype(np.int32), comment="MVE: min(shift, 0)")
            else:
                right = shift_sym  # min(shift, 0) is the shift itself
        elif rounding in (1, 3) and shift.size and np.all(shift <= -2):  # half up, or ties away from zero
            right = layer.array("right", (shift + 1).astype(np.int32), comment="MVE: shift + 1 (single rounding)")
        return fields(mult=mult_sym, shift=shift_sym,
                      per_channel=per_channel, single_rounding=rounding,
                      out_offset=at["output_offset"], act_min=at["act_min"], act_max=at["act_max"],
                      left=left, right=right, all_right=rounding == 0 and bool(np.all(shift < 0)))

    def bias(self, op: Op, channels: int) -> np.ndarray:
        name = op.inputs[2] if len(op.inputs) > 2 else ""
        if not name:
            return np.zeros(channels, dtype=np.int64)
        return self.g.tensors[name].data.astype(np.int64).reshape(-1)

    @staticmethod
    def int32(layer: Layer, what: str, v: np.ndarray) -> np.ndarray:
        if v.size and (v.min() < INT32[0] or v.max() > INT32[1]):
            raise DmxError(f"layer {layer.name!r} ({layer.kind}): {what} does not fit int32")
        return v.astype(np.int32)

    def matvec(self, layer: Layer, op: Op, lw: Choice) -> list[Field]:
        """The weight struct of a matrix-vector kernel, with the input offset folded into the bias."""
        rows, cols = lw.matrix.shape
        folded = self.bias(op, rows) + op.attrs["input_offset"] * lw.matrix.astype(np.int64).sum(axis=1)
        bias = layer.array("bias", self.int32(layer, "bias + input_offset * weight sum", folded))
        packed = lw.fmt == "dense" and op.attrs.get("weight_bits") == 4
        if packed:
            arr = {"values": layer.array("values", pack_int4(layer, lw.matrix), "weights", "dense int4, two per byte")}
        else:
            arr = {k: layer.array(k, v, "weights", f"{lw.fmt} {k}") for k, v in lw.enc.arrays.items()}
        if lw.fmt == "dense":
            return fields(rows=rows, cols=cols, values=arr["values"], bias=bias, packed4=packed)
        if lw.fmt == "csr":
            wide = lw.enc.arrays["row_ptr"].dtype == np.uint32
            return fields(rows=rows, cols=cols, values=arr["values"], col_idx=arr["col_idx"],
                          row_ptr16=Sym(None) if wide else arr["row_ptr"],
                          row_ptr32=arr["row_ptr"] if wide else Sym(None), bias=bias)
        if lw.fmt == "dcsr_gather":
            return fields(rows=rows, cols=cols, **{k: arr[k] for k in (
                "values", "offsets", "group_minimums", "row_offsets", "nnze")}, bias=bias)
        return fields(rows=rows, cols=cols, **{k: arr[k] for k in (
            "values", "delta_indices", "bitmaps", "bitmasks", "group_minimums", "row_offsets", "nnze")}, bias=bias)

    def weights(self, layer: Layer, op: Op) -> Choice:
        w = self.g.weights(op).data
        lw = self.storage[op.name]
        layer.info.update(format=lw.fmt, format_reason=lw.reason, sparsity=round(float(lw.sparsity), 6),
                          weight_shape=list(w.shape), matrix=list(lw.matrix.shape),
                          dense_weight_bytes=int(lw.matrix.size))
        if lw.candidates:
            layer.info["format_bytes"] = lw.candidates
        return lw

    def shape(self, name: str) -> tuple[int, ...]:
        return self.g.tensors[name].shape

    def dtype_variant(self, names: list[str]) -> str | None:
        """The kernel variant for the integer tensors `names` (in, out): None when all are int8 (the
        kernel as it was before int16), else their suffixes joined ("s16", "s8_s16", "s16_s8")."""
        sfx = [DTYPE_SUFFIX[self.g.tensors[n].dtype] for n in names if self.g.tensors[n].dtype != "float32"]
        if all(x == "s8" for x in sfx):
            return None
        return sfx[0] if len(set(sfx)) == 1 else "_".join(sfx)

    # -- one method per op kind -----------------------------------------------
    @c_resolver("conv2d", {"conv2d": INLINE}, calls=("im2col",) + MATVECS, scratch=_im2col_bytes)
    def conv2d(self, layer: Layer, op: Op, i: int) -> None:
        if c_16x8.is_16x8(self.g, op):
            return c_16x8.conv2d(self, layer, op, i, is_direct(self.g, op))
        at = op.attrs
        n, in_h, in_w, in_c = self.shape(op.inputs[0])
        _, out_h, out_w, out_c = self.shape(op.outputs[0])
        _, kh, kw, _ = self.shape(op.inputs[1])
        lw = self.weights(layer, op)
        pt, pl, _, _ = at["pad"]
        layer.kernel = f"dmx_conv2d_{lw.fmt}_s8"
        layer.struct_type = f"dmx_conv2d_{lw.fmt}_t"
        layer.templates = [("im2col", None), (f"matvec_{lw.fmt}", None), ("conv2d", lw.fmt)]
        layer.fields = fields(batches=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
                              k_h=kh, k_w=kw, stride_h=at["stride"][0], stride_w=at["stride"][1],
                              dil_h=at["dilation"][0], dil_w=at["dilation"][1], pad_top=pt, pad_left=pl,
                              pad_value=-at["input_offset"], direct=is_direct(self.g, op),
                              w=self.matvec(layer, op, lw), rq=self.requant(layer, op))
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op), self.scratch_ref(i)]

    @c_resolver("fully_connected", {"fully_connected": INLINE}, calls=MATVECS)
    def fully_connected(self, layer: Layer, op: Op, i: int) -> None:
        if c_16x8.is_16x8(self.g, op):
            return c_16x8.fully_connected(self, layer, op, i)
        lw = self.weights(layer, op)
        layer.kernel = f"dmx_fully_connected_{lw.fmt}_s8"
        layer.struct_type = f"dmx_fully_connected_{lw.fmt}_t"
        layer.templates = [(f"matvec_{lw.fmt}", None), ("fully_connected", lw.fmt)]
        layer.fields = fields(batches=op.attrs["batches"], w=self.matvec(layer, op, lw), rq=self.requant(layer, op))
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("depthwise_conv2d", {"depthwise_conv2d": INLINE}, scratch=_depthwise_plane_bytes)
    def depthwise_conv2d(self, layer: Layer, op: Op, i: int) -> None:
        if c_16x8.is_16x8(self.g, op):
            return c_16x8.depthwise_conv2d(self, layer, op, i)
        at = op.attrs
        n, in_h, in_w, in_c = self.shape(op.inputs[0])
        _, out_h, out_w, out_c = self.shape(op.outputs[0])
        _, kh, kw, _ = self.shape(op.inputs[1])
        lw = self.weights(layer, op)  # always dense: the kernel walks taps x channels
        taps = lw.matrix.astype(np.int64)  # [kh*kw, out_c]
        bias = self.bias(op, out_c)
        folded = bias + at["input_offset"] * taps.sum(axis=0)
        pt, pl, _, _ = at["pad"]
        plane = _depthwise_plane(self.g, op) or (0, 0)  # rows, columns; 0: no plane (the lanes kernel)
        layer.kernel, layer.struct_type = "dmx_depthwise_conv2d_s8", "dmx_depthwise_conv2d_t"
        layer.fields = fields(
            batches=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
            depth_mult=at.get("depth_multiplier", 1), k_h=kh, k_w=kw, stride_h=at["stride"][0],
            stride_w=at["stride"][1], dil_h=at["dilation"][0], dil_w=at["dilation"][1], pad_top=pt, pad_left=pl,
            input_offset=at["input_offset"], w=layer.array("values", lw.enc.arrays["values"], "weights", "dense taps"),
            bias=layer.array("bias", self.int32(layer, "bias", bias)),
            bias_folded=layer.array("bias_folded", self.int32(layer, "folded bias", folded)),
            rq=self.requant(layer, op), plane_h=plane[0], plane_w=plane[1])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op), self.scratch_ref(i)]

    def _binary(self, layer: Layer, op: Op) -> Field:
        walk = loops.broadcast(self.shape(op.outputs[0]), self.shape(op.inputs[0]), self.shape(op.inputs[1]))
        walk = walk.collapse(f"layer {op.name!r} ({op.kind})")
        layer.args = [self.ref(layer, op.inputs[0], "in1"), self.ref(layer, op.inputs[1], "in2"),
                      self.out_ref(layer, op)]
        return Field("shape", "struct", fields(n=walk.n, a_stride=walk.strides[0], b_stride=walk.strides[1]))

    @c_resolver("add", {"add": INLINE})
    def add(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        shape = self._binary(layer, op)
        variant = self.dtype_variant(op.outputs)  # "s16": TFLite's 16x8 ADD (MVE: s16/add_mve.c.j2)
        layer.kernel, layer.struct_type = f"dmx_add_{variant or 's8'}", "dmx_add_t"
        if variant:
            layer.templates = [("add", variant)]
        layer.fields = [shape] + fields(**kernel_constants(op.a), act_min=at["act_min"], act_max=at["act_max"])

    @c_resolver("mul", {"mul": INLINE})
    def mul(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        shape = self._binary(layer, op)
        variant = self.dtype_variant(op.outputs)  # "s16": TFLite's 16x8 MUL
        layer.kernel, layer.struct_type = f"dmx_mul_{variant or 's8'}", "dmx_mul_t"
        if variant:
            layer.templates = [("mul", variant)]
        layer.fields = [shape] + fields(in1_offset=at["input1_offset"], in2_offset=at["input2_offset"],
                                        out_mult=at["output_multiplier"], out_shift=at["output_shift"],
                                        out_offset=at["output_offset"], act_min=at["act_min"],
                                        act_max=at["act_max"])

    def _pool(self, layer: Layer, op: Op) -> None:
        at = op.attrs
        n, in_h, in_w, c = self.shape(op.inputs[0])
        _, out_h, out_w, _ = self.shape(op.outputs[0])
        variant = self.dtype_variant(op.outputs)
        layer.kernel, layer.struct_type = f"dmx_{op.kind}_{variant or 's8'}", f"dmx_{op.kind}_t"
        if variant:
            layer.templates = [(op.kind, variant)]
        layer.fields = fields(batches=n, in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w,
                              f_h=at["filter"][0], f_w=at["filter"][1], stride_h=at["stride"][0],
                              stride_w=at["stride"][1], pad_top=at["pad"][0], pad_left=at["pad"][1],
                              act_min=at["act_min"], act_max=at["act_max"])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]
        if op.kind == "avg_pool2d" and op.a.divisor == "window":  # its own kernel, printed with fmt "window"
            win_h, win_w = window_ends(op.a, in_h, in_w)
            layer.kernel = f"dmx_avg_pool2d_window_{variant or 's8'}"
            layer.struct_type = "dmx_avg_pool2d_window_t"
            layer.fields += fields(win_h=win_h, win_w=win_w)
            # it calls avg_pool2d's dmx_avg_round_<s8|s16>
            layer.templates = [("avg_pool2d", variant), ("avg_pool2d_window", variant)]

    @c_resolver("avg_pool2d", {"avg_pool2d": INLINE, "avg_pool2d_window": INLINE})
    def avg_pool2d(self, layer: Layer, op: Op, i: int) -> None:
        self._pool(layer, op)
        if not layer.templates:  # divisor "valid": its own kernel only, so kernels.h is as before the other
            layer.templates = [("avg_pool2d", None)]

    @c_resolver("max_pool2d", {"max_pool2d": INLINE})
    def max_pool2d(self, layer: Layer, op: Op, i: int) -> None:
        self._pool(layer, op)

    @c_resolver("pad", {"pad": INLINE}, calls=("copy",))
    def pad(self, layer: Layer, op: Op, i: int) -> None:
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]  # int8, or float32 at the I/O
        out = self.g.tensors[op.outputs[0]]
        before = tuple(int(a) for a, _ in op.attrs["paddings"])
        where = f"layer {op.name!r} (pad)"
        value = op.attrs["value"]
        if out.dtype in ("int8", "int16"):
            info = np.iinfo(out.dtype)
            if not (float(value).is_integer() and info.min <= int(value) <= info.max):
                raise DmxError(f"{where}: padding value {value!r} is not an {out.dtype}")
        layer.kernel = {"int8": "dmx_pad_s8", "int16": "dmx_pad_s16", "float32": "dmx_pad_f32"}[out.dtype]
        if out.dtype == "int16":
            layer.templates = [("pad", "s16")]
        layer.struct_type = "dmx_pad_t"
        layer.fields = fields(fill=copy_fields(loops.fill(out.shape).collapse(where), out.itemsize),
                              copy=copy_fields(loops.pad(self.shape(op.inputs[0]), out.shape, before).collapse(where),
                                               out.itemsize),
                              value=layer.array("value", np.asarray([value], dtype=out.dtype),
                                                "params", "the pad value"))

    def _reduction(self, layer: Layer, op: Op) -> Field:
        walk = loops.reduction(self.shape(op.inputs[0]), tuple(op.attrs["axes"]))
        walk = walk.collapse(f"layer {op.name!r} ({op.kind})")
        return Field("shape", "struct", fields(n=walk.n, a_stride=walk.strides[0], b_stride=[0] * loops.RANK))

    @c_resolver("mean", {"mean": OUT_OF_LINE}, scratch=_mean_sums_bytes)
    def mean(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        shape = self._reduction(layer, op)
        variant = self.dtype_variant(op.outputs)  # "s16": TFLite's 16x8 MEAN (the same int32 sums)
        layer.kernel, layer.struct_type = f"dmx_mean_{variant or 's8'}", "dmx_mean_t"
        if variant:
            layer.templates = [("mean", variant)]
        layer.fields = [shape] + fields(out_size=loops.size(self.shape(op.outputs[0])), count=at["count"],
                                        in_offset=at["input_offset"], mult=at["mean_multiplier"],
                                        shift=at["mean_shift"],
                                        out_offset=at["output_offset"])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op), self.scratch_ref(i, "int32_t")]

    @c_resolver("reduce_max", {"reduce_max": OUT_OF_LINE})
    def reduce_max(self, layer: Layer, op: Op, i: int) -> None:
        shape = self._reduction(layer, op)
        layer.kernel, layer.struct_type = "dmx_reduce_max_s8", "dmx_reduce_max_t"
        layer.fields = [shape] + fields(out_size=loops.size(self.shape(op.outputs[0])))
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    def _rows(self, op: Op) -> tuple[int, int]:
        """(rows, depth) of a last-axis op."""
        shape = self.shape(op.inputs[0])
        depth = shape[-1] if shape else 1
        return loops.size(shape) // depth, depth

    @c_resolver("softmax", {"softmax": OUT_OF_LINE})
    def softmax(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        rows, depth = self._rows(op)
        layer.kernel, layer.struct_type = "dmx_softmax_s8", "dmx_softmax_t"
        table = layer.array("table", np.asarray(at["table"], dtype=np.float32), "params", "expf table")
        layer.fields = fields(rows=rows, depth=depth, table=table, out_scale=F32(at["output_scale"]))
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("softmax_gemmlowp", {"softmax_gemmlowp": OUT_OF_LINE})
    def softmax_gemmlowp(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        rows, depth = self._rows(op)
        layer.kernel, layer.struct_type = "dmx_softmax_gemmlowp_s8", "dmx_softmax_gemmlowp_t"
        layer.fields = fields(rows=rows, depth=depth, input_multiplier=at["input_multiplier"],
                              input_left_shift=at["input_left_shift"], diff_min=at["diff_min"])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("quantize", {"quantize_f32": OUT_OF_LINE})
    def quantize(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        variant = self.dtype_variant(op.outputs)
        layer.kernel, layer.struct_type = f"dmx_quantize_f32_{variant or 's8'}", "dmx_quantize_f32_t"
        layer.templates = [("quantize_f32", variant)]
        layer.fields = fields(size=loops.size(self.shape(op.outputs[0])), scale=F32(at["scale"]),
                              zero_point=at["zero_point"])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("requantize", {"requantize": INLINE})
    def requantize(self, layer: Layer, op: Op, i: int) -> None:
        at = op.attrs
        variant = self.dtype_variant([op.inputs[0], op.outputs[0]])
        layer.kernel, layer.struct_type = f"dmx_requantize_{variant or 's8'}", "dmx_requantize_t"
        layer.templates = [("requantize", variant)]
        layer.fields = fields(size=loops.size(self.shape(op.outputs[0])), in_offset=at["input_offset"],
                              mult=at["multiplier"], shift=at["shift"], out_offset=at["output_offset"])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("dequantize", {"dequantize": OUT_OF_LINE})
    def dequantize(self, layer: Layer, op: Op, i: int) -> None:
        variant = self.dtype_variant(op.inputs[:1])
        layer.kernel, layer.struct_type = f"dmx_dequantize_{variant or 's8'}_f32", "dmx_dequantize_t"
        layer.templates = [("dequantize", variant)]
        layer.fields = fields(size=loops.size(self.shape(op.outputs[0])), scale=F64(op.attrs["scale"]),
                              zero_point=op.attrs["zero_point"])
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("lut", {"lut": INLINE})
    def lut(self, layer: Layer, op: Op, i: int) -> None:
        layer.kernel, layer.struct_type = "dmx_lut_s8", "dmx_lut_t"
        layer.fields = fields(size=loops.size(self.shape(op.outputs[0])),
                              table=layer.array("table", np.asarray(op.attrs["table"], dtype=np.int8)))
        layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op)]

    @c_resolver("custom", {"custom": OUT_OF_LINE})
    def custom(self, layer: Layer, op: Op, i: int) -> None:
        """A user's kernel for a TFLite CUSTOM operator (ops/custom.py): dmx_custom_<name>, its file
        copied into the export (c.py), called with the sizes, the options bytes and the tensors."""
        from ..ops.custom import registered

        impl = registered(op.a.name)
        if impl is None:
            raise DmxError(f"layer {op.name!r} (custom operator {op.a.name!r}): no registered implementation")
        layer.kernel, layer.struct_type = f"dmx_custom_{impl.ident}", "dmx_custom_t"
        layer.templates = [("custom", impl.ident)]
        layer.info["custom_source"] = str(impl.c_source)
        sizes = np.array([self.g.tensors[n].size for n in op.inputs], np.int32)
        options = np.asarray(op.a.options, np.uint8)
        layer.fields = fields(n_inputs=len(op.inputs), input_sizes=layer.array("input_sizes", sizes),
                              output_size=self.g.tensors[op.outputs[0]].size, options_size=int(options.size),
                              options=layer.array("options", options, comment="custom_options"))
        ins = [self.ref(layer, n, f"in{k + 1}") for k, n in enumerate(op.inputs)]
        layer.args = [Ref("list", items=ins, ctype="void"), self.out_ref(layer, op)]

    @c_resolver("concat", {"concat": INLINE}, calls=("copy",), from_params=True)
    def concat(self, layer: Layer, op: Op, i: int) -> None:
        """Printed from its spec's kernel_params; registered here, not by _register_from_params,
        so that kernels.h keeps the order it had when concat had a resolver of its own."""
        self.from_params(layer, op, i)

    @c_resolver("reshape", {"copy": INLINE})
    def reshape(self, layer: Layer, op: Op, i: int) -> None:
        """A reshape's copy walks both buffers contiguously: one row of the strided copy, no descriptor."""
        if i in self.plan.copies:
            layer.kernel = "dmx_copy"
            nbytes = self.g.tensors[op.outputs[0]].nbytes
            layer.args = [self.ref(layer, op.inputs[0]), self.out_ref(layer, op), Ref("int", value=nbytes)]
        else:
            self.out_ref(layer, op)
            layer.info["alias_of"] = op.inputs[0]

    def _recurrent(self, layer: Layer, op: Op, weights: tuple[str, ...]) -> list[Ref]:
        """The struct of a kind that keeps state (lstm, gru, svdf) from its kernel_params, `weights` the
        arrays stored as weights; returns a Ref per state input: the plan's persistent arena bytes the
        kernel reads and writes (one state per layer: a state read elsewhere is refused)."""
        layer.kernel, layer.struct_type = f"dmx_{op.kind}_s8", f"dmx_{op.kind}_t"
        values = {}
        for name, v in op.spec.kernel_params(self.g, op).items():
            role = "weights" if name in weights else "params"
            values[name] = layer.array(name, v, role) if isinstance(v, np.ndarray) else v
        layer.fields = fields(**values)
        states = []
        for k in op.spec.state_inputs:
            name = op.inputs[k]
            if not self.plan.buffer(name).persistent:  # plan_memory keeps every state_inputs tensor
                raise DmxError(f"C backend: layer {op.name!r} ({op.kind}): state {name!r} is not in the plan's "
                               "state region")
            if sum(n == name for o in self.g.ops for n in o.inputs) > 1:
                raise DmxError(f"layer {op.name!r} ({op.kind}): state tensor {name!r} is read by another input or "
                               f"layer; the C model keeps one state per {op.kind.upper()}")
            ctype = {"int8": "int8_t", "int16": "int16_t"}[self.g.tensors[name].dtype]
            states.append(Ref("arena", offset=self.plan.offset(name), ctype=ctype))
        layer.info["state"] = [op.inputs[k] for k in op.spec.state_inputs]
        return states

    @c_resolver("lstm", {"lstm": OUT_OF_LINE}, scratch=_lstm_bytes, from_params=True)
    def lstm(self, layer: Layer, op: Op, i: int) -> None:
        """The output and cell states in the plan's state region (docs/lstm.md), the gates int16 scratch."""
        states = self._recurrent(layer, op, ("w_in", "w_rec", "w_proj"))
        layer.args = [self.ref(layer, op.inputs[0]), *states, self.out_ref(layer, op), self.scratch_ref(i, "int16_t")]

    @c_resolver("gru", {"gru": OUT_OF_LINE}, scratch=_gru_bytes, from_params=True)
    def gru(self, layer: Layer, op: Op, i: int) -> None:
        """The Q0.15 state in the plan's state region (docs/lstm.md#gru), the old state as int8 scratch."""
        states = self._recurrent(layer, op, ("w_in", "w_rec"))
        layer.args = [self.ref(layer, op.inputs[0]), *states, self.out_ref(layer, op), self.scratch_ref(i)]

    @c_resolver("svdf", {"svdf": OUT_OF_LINE}, from_params=True)
    def svdf(self, layer: Layer, op: Op, i: int) -> None:
        """The activation state in the plan's state region, shifted and written in place (docs/svdf.md)."""
        states = self._recurrent(layer, op, ("weights_feature", "weights_time"))
        layer.args = [self.ref(layer, op.inputs[0]), *states, self.out_ref(layer, op)]

    # -- kinds printed from their spec's kernel_params (no method of their own) ---------
    def from_params(self, layer: Layer, op: Op, i: int) -> None:
        """`dmx_<kind>_<dtype>(&params, inputs..., outputs...)`, the struct filled from kernel_params."""
        where = f"layer {op.name!r} ({op.kind})"
        out = self.g.tensors[op.outputs[0]]
        dtype = op.spec.activation_dtype(self.g, op)
        if dtype not in DTYPE_SUFFIX:
            raise DmxError(f"{where}: no C kernel for {dtype} activations")
        layer.kernel, layer.struct_type = f"dmx_{op.kind}_{DTYPE_SUFFIX[dtype]}", f"dmx_{op.kind}_t"
        if dtype == "int16":  # the template's int16 variant (INT16 kernels print beside the int8 ones)
            layer.templates = [(op.kind, "s16")]
            if f"dmx_{op.kind}_s16_t" in declared_structs():  # its own struct (transpose_conv's int64 bias)
                layer.struct_type = f"dmx_{op.kind}_s16_t"

        def members(params: dict) -> list[Field]:
            values = {}
            for name, v in params.items():
                if isinstance(v, loops.Walk):
                    v = Field(name, "struct", copy_fields(v.collapse(where), out.itemsize))
                elif isinstance(v, list) and v and isinstance(v[0], loops.Walk):
                    v = Structs("dmx_copy_t", [copy_fields(w.collapse(where), out.itemsize) for w in v])
                elif isinstance(v, np.ndarray):
                    v = layer.array(name, v)
                elif isinstance(v, dict):
                    v = Field(name, "struct", members(v))
                values[name] = v
            return fields(**values)

        layer.fields = members(op.spec.kernel_params(self.g, op))
        if getattr(op.spec, "reports_status", False):  # a nonzero return makes dmx_model_run return DMX_ERROR_INDEX
            layer.info["status"] = True
        acts = [op.inputs[k] for k in op.spec.activation_inputs(op)]
        ins = [self.ref(layer, n, f"in{k + 1}") for k, n in enumerate(acts)]
        listed = Ref("list", items=ins, ctype=ins[0].ctype if ins else "int8_t")
        layer.args = ([listed] if op.spec.variadic else ins) + [self.out_ref(layer, op)]
        for name in op.outputs[1:]:
            layer.args.append(self.ref(layer, name))

    # -- driver -------------------------------------------------------------------
    def out_ref(self, layer: Layer, op: Op) -> Ref:
        layer.out = self.ref(layer, op.outputs[0])
        layer.out_bytes = self.g.tensors[op.outputs[0]].nbytes
        return layer.out

    def resolve(self, index: int, op: Op, ident: str) -> Layer:
        entry = C_RESOLVERS.lookup(op.kind, f"layer {op.name!r}")
        layer = Layer(index, op.name, ident, op.kind)
        entry.fn(self, layer, op, index)
        if layer.struct_type is not None:  # the template's typedef is the declaration; the fields must match it
            check_struct(layer.struct_type, layer.fields, {a.symbol: a.ctype for a in layer.arrays},
                         f"layer {op.name!r} ({op.kind})")
        if layer.kernel is not None and not layer.templates:  # no format variants: the kind's own kernels
            layer.templates = [(name, None) for name in entry.kernels]
        ins = [n for n in op.inputs if n and not self.g.tensors[n].is_const]
        layer.comment = c_comment(f"{op.name}: {op.kind} " + ", ".join(
            str(list(self.shape(n))) for n in ins) + f" -> {list(self.shape(op.outputs[0]))}"
            + (f", {layer.info['format']} weights" if "format" in layer.info else "")
            + (", in place" if index in self.plan.inplace else "")
            + (", no copy" if "alias_of" in layer.info else ""), 160)
        return layer


# kinds whose kernel is one dmx_copy_strided (the MVE twin is copy_mve.c.j2's, for the support table)
COPY_WALKS = ("transpose", "strided_slice")


def _register_from_params() -> None:
    """Each kind printed from its spec's kernel_params whose kernel template exists gets the
    generic resolver (a claimed kind without the template is then reported by dmxgen.support)."""
    for kind, spec in SPECS.items():
        if spec.printed_from_params and kind not in C_RESOLVERS and (KERNEL_TEMPLATES / f"{kind}.c.j2").exists():
            calls = ("copy",) if kind in COPY_WALKS else ()
            c_resolver(kind, {kind: INLINE}, calls=calls, from_params=True)(Resolver.from_params)


def copy_fields(walk: loops.Walk, elem_bytes: int) -> list[Field]:
    """A collapsed (src, dst) copy walk as the fields of the kernels' dmx_copy_t."""
    (src, dst), (src_offset, dst_offset) = walk.strides, walk.offsets
    return fields(n=walk.n, elem_bytes=elem_bytes, src_offset=src_offset, src_stride=src,
                  dst_offset=dst_offset, dst_stride=dst)


def pack_int4(layer: Layer, matrix: np.ndarray) -> np.ndarray:
    """INT4 weights two per byte, row by row (docs/exported-folder.md, "INT4 weights").

    Element c of a row is in byte c // 2 of that row's ceil(cols / 2) bytes: the low
    nibble for even c, the high nibble for odd c, 4-bit two's complement.
    """
    m = np.asarray(matrix, dtype=np.int64)
    if m.size and (m.min() < -8 or m.max() > 7):
        raise DmxError(f"layer {layer.name!r} ({layer.kind}): weight_bits=4 but weights span "
                       f"[{m.min()}, {m.max()}], outside [-8, 7]")
    if m.shape[1] % 2:
        m = np.pad(m, ((0, 0), (0, 1)))
    nib = (m & 0xF).astype(np.uint8)
    return (nib[:, 0::2] | (nib[:, 1::2] << 4)).astype(np.uint8).view(np.int8).reshape(-1)


def is_direct(graph: Graph, op: Op) -> bool:
    """A 1x1 convolution without padding reads its input pixels in place (no im2col)."""
    w = graph.tensors[op.inputs[1]].shape
    return w[1] == 1 and w[2] == 1 and not any(op.attrs["pad"])


def scratch_bytes(graph: Graph, op: Op) -> int:
    """Working memory a layer's kernel needs while it runs (planned in the arena), as registered."""
    entry = C_RESOLVERS.entries.get(op.kind)  # a kind without a C kernel fails when it is resolved
    return entry.scratch(graph, op) if entry is not None and entry.scratch is not None else 0


_register_from_params()
