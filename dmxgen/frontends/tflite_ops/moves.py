"""TFLite's data-movement operators, lowered onto the copy kinds: reshape, transpose, strided_slice,
concat and pad (PACK, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH, GATHER, SPACE_TO_BATCH_ND,
BATCH_TO_SPACE_ND).

They move int8 codes only, so every input and output must share one grid (check_same_grid). The
block rearrangements are a reshape to 6-D, transposes whose walks merge to the 4 loops the copy
kernels run (two of them where one would need five), and a reshape back; GATHER's constant
indices become runs of evenly spaced indices, one strided slice each, concatenated (run-time
indices, an embedding lookup, map to the `gather` kind instead: ops/gather.py). The layouts
follow TFLite's reference kernels (kernels/internal/reference/*.h).
"""
from __future__ import annotations

import numpy as np
import tflite

from ...errors import DmxError
from ...graph import QuantParams, Tensor, loops
from .. import tflite_slices as slices
from ..tflite_checks import check_same_grid
from ..tflite_registry import tflite_op
from .slicing import _slice_op

MAX_CONCAT = 8  # inputs of one concat op: the HLS kernel has overloads for 1 to 8
MAX_GATHER_COPIES = 256  # strided slices one GATHER may lower to


class _Lowering:
    """The ops one operator lowers to, with the intermediate tensors between them (on the output's grid)."""

    def __init__(self, reader, opname: str, out: str):
        self.g, self.opname, self.out, self.made = reader.g, opname, out, []

    def shape(self, name: str) -> tuple[int, ...]:
        return self.g.tensors[name].shape

    def add(self, kind: str, attrs: dict, srcs, shape, last: bool = False) -> str:
        """One op reading `srcs` into a new tensor of `shape`; `last`: into the operator's output
        (through a final reshape when the shapes differ)."""
        out_t = self.g.tensors[self.out]
        shape = tuple(int(d) for d in shape)
        if last and shape == out_t.shape:
            dst = self.out
        else:
            dst = f"{self.out}.{self.opname.lower()}{len(self.made)}"
            while dst in self.g.tensors:
                dst += "_"
            q = out_t.quant
            self.g.add_tensor(Tensor(dst, shape, out_t.dtype, q and QuantParams(q.scale, q.zero_point)))
        self.made.append((kind, attrs, [srcs] if isinstance(srcs, str) else list(srcs), [dst]))
        if last and dst != self.out:
            self.made.append(("reshape", {}, [dst], [self.out]))
        return dst

    def reshape(self, src: str, shape) -> str:
        t = self.g.tensors[src]
        if t.shape == tuple(shape):
            return src
        if t.is_const:  # a constant is reshaped here: HLS has no layer for a reshape of a ROM
            name = f"{self.out}.{self.opname.lower()}_{src}"
            while name in self.g.tensors:
                name += "_"
            self.g.add_tensor(Tensor(name, tuple(shape), t.dtype, t.quant, t.data.reshape(shape)))
            return name
        return self.add("reshape", {}, src, shape)

    def transpose(self, src: str, perm, last: bool = False) -> str:
        shape = self.shape(src)
        out = [shape[p] for p in perm]
        moved = [p for p in perm if shape[p] != 1]
        if moved == sorted(moved):  # only dims of size 1 move: the bytes stay in place
            return self.add("reshape", {}, src, out, last) if last else self.reshape(src, out)
        return self.add("transpose", {"perm": tuple(int(p) for p in perm)}, src, out, last)

    def permute(self, src: str, perm, steps, last: bool = False) -> str:
        """Transpose by `perm`, or by the perms `steps` (which compose to it) when one walk would need
        more loops than the copy kernels have."""
        try:
            loops.transpose(self.shape(src), tuple(perm)).collapse(self.opname)
        except DmxError:
            for k, step in enumerate(steps):
                src = self.transpose(src, step, last and k == len(steps) - 1)
            return src
        return self.transpose(src, perm, last)

    def concat(self, srcs: list[str], axis: int, last: bool = False) -> str:
        """Concatenation along `axis`, as a tree of concats of at most MAX_CONCAT inputs."""
        if len(srcs) == 1:
            return self.add("reshape", {}, srcs[0], self.shape(self.out), True) if last else srcs[0]
        while len(srcs) > MAX_CONCAT:
            srcs = [self.concat(srcs[k:k + MAX_CONCAT], axis) for k in range(0, len(srcs), MAX_CONCAT)]
        shape = list(self.shape(srcs[0]))
        shape[axis] = sum(self.shape(s)[axis] for s in srcs)
        return self.add("concat", {"axis": axis}, srcs, shape, last)


def _same_grid(reader, opname: str, ins: list[str], outs: list[str]) -> None:
    """Every int8 input and output on the first output's one per-tensor grid, quantized."""
    out = reader.g.tensors[outs[0]]
    reader._need_quant(out, "output")
    for name in ins:
        t = reader.g.tensors[name]
        reader._need_quant(t, "input")
        check_same_grid(opname, t, out)
    for name in outs[1:]:
        t = reader.g.tensors[name]
        reader._need_quant(t, "output")
        check_same_grid(opname, out, t)


def _check_out(reader, outs: list[str], want) -> None:
    out = reader.g.tensors[outs[0]]
    if tuple(want) != out.shape:
        raise DmxError(f"output shape {list(out.shape)} differs from the computed {list(want)}")


def _const(reader, name: str, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """A constant int32 / int64 operand of `shape` (block_shape, paddings, crops)."""
    t = reader.g.tensors[name]
    values = slices.const_ints(t, what)
    if t.shape != shape:
        raise DmxError(f"{what} {t.name!r} has shape {list(t.shape)}; it must be {list(shape)}")
    return np.array(values, np.int64).reshape(shape)


# -- PACK and UNPACK: a new axis of the inputs' values, and its pieces -------------------------------
@tflite_op("PACK", "concat", "reshape", inputs=(1, 4096))
def op_pack(reader, op, ins, outs):
    reader._int8_io(ins, outs, len(ins))
    o = reader.options(op, tflite.PackOptions)
    count, axis = (o.ValuesCount(), o.Axis()) if o is not None else (len(ins), 0)
    shape = reader.g.tensors[ins[0]].shape
    if count != len(ins):
        raise DmxError(f"values_count {count} differs from its {len(ins)} inputs")
    other = [n for n in ins if reader.g.tensors[n].shape != shape]
    if other:
        raise DmxError(f"input {other[0]!r} of shape {list(reader.g.tensors[other[0]].shape)} differs from the "
                       f"first input's {list(shape)}")
    rank = len(shape) + 1
    if not -rank <= axis < rank:
        raise DmxError(f"axis {axis} is outside [{-rank}, {rank})")
    axis %= rank
    _check_out(reader, outs, shape[:axis] + (count,) + shape[axis:])
    _same_grid(reader, "PACK", ins, outs)
    low = _Lowering(reader, "PACK", outs[0])
    one = shape[:axis] + (1,) + shape[axis:]
    low.concat([low.reshape(n, one) if len(ins) > 1 else n for n in ins], axis, last=True)
    return low.made


@tflite_op("UNPACK", "strided_slice", inputs=(1, 1), many_outputs=True)
def op_unpack(reader, op, ins, outs):
    inp = reader.g.tensors[ins[0]]
    reader._int8_io(ins, outs)
    o = reader.options(op, tflite.UnpackOptions)
    num, axis = (o.Num(), o.Axis()) if o is not None else (len(outs), 0)
    rank = len(inp.shape)
    if not -rank <= axis < rank:
        raise DmxError(f"axis {axis} is outside [{-rank}, {rank})")
    axis %= rank
    if not num == len(outs) == inp.shape[axis]:
        raise DmxError(f"num {num} must equal the {len(outs)} outputs and the {inp.shape[axis]} entries of axis {axis}")
    made = []
    reader._need_quant(inp, "input")
    for k, name in enumerate(outs):
        reader._int8_io([], [name])
        reader._need_quant(reader.g.tensors[name], "output")
        begin, end = [0] * rank, list(inp.shape)
        begin[axis], end[axis] = k, k + 1
        r = slices.Ranges(tuple(begin), tuple(end), (1,) * rank, inp.shape[:axis] + inp.shape[axis + 1:])
        made.append((*_slice_op(reader, "UNPACK", inp, reader.g.tensors[name], r), [name]))
    return made


# -- DEPTH_TO_SPACE and SPACE_TO_DEPTH: blocks of pixels to and from channels (TFLite's DCR order) --------
def _block(reader, op, cls, opname: str, ins, outs) -> tuple[int, int, int, int, int]:
    reader._int8_io(ins, outs)
    inp = reader.g.tensors[ins[0]]
    if len(inp.shape) != 4:
        raise DmxError(f"{opname} takes a 4-D NHWC input, got {list(inp.shape)}")
    o = reader.options(op, cls)
    b = o.BlockSize() if o is not None else 0
    if b < 1:
        raise DmxError(f"block_size {b} must be at least 1")
    _same_grid(reader, opname, ins[:1], outs)
    return (b, *inp.shape)


@tflite_op("DEPTH_TO_SPACE", "transpose", "reshape", inputs=(1, 1))
def op_depth_to_space(reader, op, ins, outs):
    b, n, h, w, c = _block(reader, op, tflite.DepthToSpaceOptions, "DEPTH_TO_SPACE", ins, outs)
    if c % (b * b):
        raise DmxError(f"{c} channels are not a multiple of block_size {b} squared")
    _check_out(reader, outs, (n, h * b, w * b, c // (b * b)))
    # out[n, h*b + i, w*b + j, c] = in[n, h, w, (i*b + j)*C' + c]
    low = _Lowering(reader, "DEPTH_TO_SPACE", outs[0])
    low.transpose(low.reshape(ins[0], (n, h, w, b, b, c // (b * b))), (0, 1, 3, 2, 4, 5), last=True)
    return low.made


@tflite_op("SPACE_TO_DEPTH", "transpose", "reshape", inputs=(1, 1))
def op_space_to_depth(reader, op, ins, outs):
    b, n, h, w, c = _block(reader, op, tflite.SpaceToDepthOptions, "SPACE_TO_DEPTH", ins, outs)
    if h % b or w % b:
        raise DmxError(f"height {h} and width {w} must be multiples of block_size {b}")
    _check_out(reader, outs, (n, h // b, w // b, c * b * b))
    low = _Lowering(reader, "SPACE_TO_DEPTH", outs[0])
    low.transpose(low.reshape(ins[0], (n, h // b, b, w // b, b, c)), (0, 1, 3, 2, 4, 5), last=True)
    return low.made


# -- GATHER with constant indices: runs of evenly spaced indices, one strided slice each ----------------
def _runs(idx: list[int], limit: int = MAX_GATHER_COPIES) -> list[tuple[int, int, int]]:
    """`idx` as maximal (first, count, step) runs of evenly spaced, distinct values (stopping once
    there are more than `limit`)."""
    out, j = [], 0
    while j < len(idx) and len(out) <= limit:
        step = idx[j + 1] - idx[j] if j + 1 < len(idx) else 1
        k = j + 1
        if step:
            while k < len(idx) and idx[k] - idx[k - 1] == step:
                k += 1
        else:
            step = 1
        out.append((idx[j], k - j, step))
        j = k
    return out


@tflite_op("GATHER", "gather", "strided_slice", "concat", "reshape", inputs=(2, 2))
def op_gather(reader, op, ins, outs):
    """Run-time indices: one `gather` op (ops/gather.py); constant ones: strided slices and concats."""
    reader._int8_io(ins, outs, int16=True)  # the params and the output: codes are copied, int8 or int16
    params, positions = reader.g.tensors[ins[0]], reader.g.tensors[ins[1]]
    if positions.dtype not in ("int32", "int64"):
        raise DmxError(f"indices {positions.name!r} are {positions.dtype}; GATHER takes int32 or int64 indices")
    o = reader.options(op, tflite.GatherOptions)
    axis, batch_dims = (o.Axis(), o.BatchDims()) if o is not None else (0, 0)
    shape, ishape = params.shape, positions.shape
    rank = len(shape)
    if not -rank <= axis < rank:
        raise DmxError(f"axis {axis} is outside [{-rank}, {rank})")
    axis %= rank
    bd = batch_dims + len(ishape) if batch_dims < 0 else batch_dims
    if not 0 <= bd <= min(axis, len(ishape)) or bd >= rank:
        raise DmxError(f"batch_dims {batch_dims} must lie in [0, axis {axis}] and within the indices' "
                       f"{len(ishape)} dims")
    if shape[:bd] != ishape[:bd]:
        raise DmxError(f"the {bd} batch dims of params {list(shape)} and indices {list(ishape)} differ")
    _check_out(reader, outs, shape[:axis] + ishape[bd:] + shape[axis + 1:])
    _same_grid(reader, "GATHER", ins[:1], outs)
    size = shape[axis]
    if positions.data is None:  # an embedding lookup: the indices are an input or computed
        return "gather", {"axis": axis, "batch_dims": bd}, list(ins)
    idx = positions.data.astype(np.int64)
    if ((idx < 0) | (idx >= size)).any():  # LiteRT fails at Eval ("out of bounds"), TFLM reads past the tensor
        bad = int(idx[(idx < 0) | (idx >= size)].reshape(-1)[0])
        raise DmxError(f"index {bad} is outside the {size} entries of axis {axis}")
    batches, outer, inner = (loops.size(shape[:bd]), loops.size(shape[bd:axis]), loops.size(shape[axis + 1:]))
    rows = [list(map(int, r)) for r in idx.reshape(batches, -1)]
    groups = [(0, batches, rows[0])] if all(r == rows[0] for r in rows) else [(b, b + 1, r) for b, r in enumerate(rows)]
    runs, copies = [], 0
    for b0, b1, r in groups:
        runs.append((b0, b1, _runs(r, MAX_GATHER_COPIES - copies)))
        copies += len(runs[-1][2])
        if copies > MAX_GATHER_COPIES:
            raise DmxError(f"its {idx.size} indices make more than {MAX_GATHER_COPIES} runs of evenly spaced "
                           f"indices, one copy each; dmxgen lowers GATHER to at most {MAX_GATHER_COPIES} copies")
    low = _Lowering(reader, "GATHER", outs[0])
    view = low.reshape(ins[0], (batches, outer, size, inner))
    parts = []
    for b0, b1, pieces in runs:
        cut = []
        for first, count, step in pieces:
            end = first + (count - 1) * step + (1 if step > 0 else -1)  # one past the last, never beyond the dim
            r = slices.Ranges((b0, 0, first, 0), (b1, outer, end, inner), (1, 1, step, 1),
                              (b1 - b0, outer, count, inner))
            cut.append(low.add("strided_slice", {"begin": r.begin, "end": r.end, "step": r.step}, view, r.out_shape,
                               last=copies == 1))
        parts.append(low.concat(cut, 2, last=len(runs) == 1) if copies > 1 else cut[0])
    if len(runs) > 1:
        low.concat(parts, 0, last=True)
    return low.made


# -- SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND: spatial blocks to and from the batch ------------------------
def _spatial(reader, opname: str, ins, outs, what: str):
    """The 4-D view (N, H, W, C) of a 3-D or 4-D input, and block_shape and the paddings / crops as
    [2, 2] (a 3-D input has width 1, block 1, no padding), as TFLite's reference extends them."""
    reader._int8_io(ins, outs)
    inp = reader.g.tensors[ins[0]]
    if len(inp.shape) not in (3, 4):
        raise DmxError(f"{opname} takes a 3-D or 4-D input, got {list(inp.shape)}")
    m = len(inp.shape) - 2
    block = _const(reader, ins[1], "block_shape", (m,))
    amounts = _const(reader, ins[2], what, (m, 2))
    if (block < 1).any():
        raise DmxError(f"block_shape {block.tolist()} must be at least 1")
    if (amounts < 0).any():
        raise DmxError(f"{what} {amounts.tolist()} must not be negative")
    _same_grid(reader, opname, ins[:1], outs)
    s = inp.shape
    n, h, w, c = (s[0], s[1], 1, s[2]) if m == 1 else s
    block = [int(block[0]), int(block[1]) if m == 2 else 1]
    amounts = [list(map(int, amounts[0])), list(map(int, amounts[1])) if m == 2 else [0, 0]]
    return (n, h, w, c), block, amounts, m


@tflite_op("SPACE_TO_BATCH_ND", "transpose", "pad", "reshape", inputs=(3, 3))
def op_space_to_batch_nd(reader, op, ins, outs):
    reader.options(op, tflite.SpaceToBatchNDOptions)  # an empty table; another type is refused
    (n, h, w, c), (bh, bw), ((pt, pb), (pl, pr)), m = _spatial(reader, "SPACE_TO_BATCH_ND", ins, outs, "paddings")
    hp, wp = h + pt + pb, w + pl + pr
    if hp % bh or wp % bw:
        raise DmxError(f"padded spatial size {[hp, wp][:m]} is not a multiple of block_shape {[bh, bw][:m]}")
    _check_out(reader, outs, (n * bh * bw, hp // bh, wp // bw, c) if m == 2 else (n * bh, hp // bh, c))
    low = _Lowering(reader, "SPACE_TO_BATCH_ND", outs[0])
    x = ins[0]
    if (pt or pb or pl or pr) and reader.semantics == "tflm":
        raise DmxError("TFLite Micro pads SPACE_TO_BATCH_ND with uninitialised memory (its kernel never sets "
                       "the pad value), so padded ones cannot be matched; unpadded ones are supported")
    if pt or pb or pl or pr:  # padded with the zero point, as LiteRT's pad_value (output_offset)
        pads = ((0, 0), (pt, pb), (pl, pr), (0, 0)) if m == 2 else ((0, 0), (pt, pb), (0, 0))
        zp = int(reader.g.tensors[outs[0]].quant.zp)
        x = low.add("pad", {"paddings": pads, "value": zp}, x, [d + a + b for d, (a, b) in zip(low.shape(x), pads)])
    # out[(i*bw + j)*N + n, y, x, c] = padded[n, y*bh + i, x*bw + j, c]
    x = low.reshape(x, (n, hp // bh, bh, wp // bw, bw, c))
    low.permute(x, (2, 4, 0, 1, 3, 5), [(2, 0, 1, 3, 4, 5), (0, 4, 1, 2, 3, 5)], last=True)
    return low.made


@tflite_op("BATCH_TO_SPACE_ND", "transpose", "reshape", "strided_slice", inputs=(3, 3))
def op_batch_to_space_nd(reader, op, ins, outs):
    reader.options(op, tflite.BatchToSpaceNDOptions)
    (nb, h, w, c), (bh, bw), ((ct, cb), (cl, cr)), m = _spatial(reader, "BATCH_TO_SPACE_ND", ins, outs, "crops")
    if nb % (bh * bw):
        raise DmxError(f"batch {nb} is not a multiple of the block's {bh * bw} entries")
    n, hf, wf = nb // (bh * bw), h * bh, w * bw
    if ct + cb >= hf or cl + cr >= wf:
        raise DmxError(f"crops {[[ct, cb], [cl, cr]][:m]} leave nothing of the {[hf, wf][:m]} spatial size")
    _check_out(reader, outs, (n, hf - ct - cb, wf - cl - cr, c) if m == 2 else (n, hf - ct - cb, c))
    low = _Lowering(reader, "BATCH_TO_SPACE_ND", outs[0])
    # full[n, y*bh + i, x*bw + j, c] = in[(i*bw + j)*N + n, y, x, c], then the crops are cut away
    x = low.reshape(ins[0], (bh, bw, n, h, w, c))
    crop = ct or cb or cl or cr
    x = low.permute(x, (2, 3, 0, 4, 1, 5), [(0, 2, 3, 4, 1, 5), (1, 2, 0, 3, 4, 5)], last=not crop)
    if crop:
        full = (n, hf, wf, c) if m == 2 else (n, hf, c)
        x = low.reshape(x, full)
        begin, end = (0, ct, cl, 0)[:m + 1] + (0,), (n, hf - cb, wf - cr, c)[:m + 1] + (c,)
        r = slices.Ranges(begin, end, (1,) * len(full), tuple(e - b for b, e in zip(begin, end)))
        low.add("strided_slice", {"begin": r.begin, "end": r.end, "step": r.step}, x, r.out_shape, last=True)
    return low.made
