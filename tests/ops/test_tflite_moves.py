"""PACK, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH, GATHER, SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND
(frontends/tflite_ops/moves.py, lowered onto reshape, transpose, strided_slice, concat and pad):
every case against LiteRT and TFLite Micro, on the targets, the lowerings' shapes, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph import loops
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, bias, case_sets, check_case, save, weights
from ._targets import check_targets, targets

Q = {"scale": 0.05, "zero_point": -7}
KINDS = ("reshape", "transpose", "strided_slice", "concat", "pad")


def add_op(m: ModelBuilder, opname: str, ins, outs, options: str | None = None, **fields) -> None:
    """An operator with its options table (the builder's own table lacks these operators)."""
    m.op(opname, ins, outs)
    if options is not None:
        o = getattr(S, f"{options}T")()
        for k, v in fields.items():
            setattr(o, k, v)
        op = m.sg.operators[-1]
        op.builtinOptionsType, op.builtinOptions = getattr(S.BuiltinOptions, options), o


def numpy_out(opname: str, xs: list[np.ndarray], **p) -> np.ndarray:
    """What the operator computes, written with numpy from TensorFlow's definitions (the models'
    output shapes, and the values the reference must give)."""
    x = xs[0]
    if opname == "PACK":
        return np.stack(xs, axis=p["axis"])
    if opname == "DEPTH_TO_SPACE":
        b, (n, h, w, c) = p["block"], x.shape
        return x.reshape(n, h, w, b, b, c // b // b).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, -1)
    if opname == "SPACE_TO_DEPTH":
        b, (n, h, w, c) = p["block"], x.shape
        return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // b, w // b, -1)
    if opname == "GATHER":
        idx, axis, bd = np.asarray(p["indices"]), p["axis"] % x.ndim, p.get("batch_dims", 0)
        bd += idx.ndim if bd < 0 else 0
        if bd == 0:
            return np.take(x, idx, axis=axis)
        return np.stack([numpy_out("GATHER", [x[b]], indices=idx[b], axis=axis - 1, batch_dims=bd - 1)
                         for b in range(x.shape[0])])
    if opname == "SPACE_TO_BATCH_ND":
        block, pads = list(p["block"]), [list(r) for r in p["pads"]]
        x3 = x.ndim == 3
        x = x[:, :, None, :] if x3 else x
        block, pads = (block + [1], pads + [[0, 0]]) if x3 else (block, pads)
        xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=0)  # callers shift the codes: 0 is the zero point
        n, hp, wp, c = xp.shape
        (bh, bw) = block
        y = xp.reshape(n, hp // bh, bh, wp // bw, bw, c).transpose(2, 4, 0, 1, 3, 5).reshape(-1, hp // bh, wp // bw, c)
        return y[:, :, 0, :] if x3 else y
    if opname == "BATCH_TO_SPACE_ND":
        block, crops = list(p["block"]), [list(r) for r in p["crops"]]
        x3 = x.ndim == 3
        x = x[:, :, None, :] if x3 else x
        block, crops = (block + [1], crops + [[0, 0]]) if x3 else (block, crops)
        nb, h, w, c = x.shape
        (bh, bw) = block
        y = x.reshape(bh, bw, nb // bh // bw, h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(-1, h * bh, w * bw, c)
        y = y[:, crops[0][0]:h * bh - crops[0][1], crops[1][0]:w * bw - crops[1][1]]
        return y[:, :, 0, :] if x3 else y
    raise ValueError(opname)


# -- the models ------------------------------------------------------------------------------------
def pack_model(shape, count, axis, out_quant=None, out_shape=None, values_count=None, const=False):
    """`const`: the last input is a constant (its reshape is folded, no layer)."""
    m = ModelBuilder()
    data = np.arange(np.prod(shape)).reshape(shape) % 251 - 125
    xs = [m.tensor(f"x{k}", shape, "int8", **Q, data=data if const and k == count - 1 else None) for k in range(count)]
    want = out_shape or numpy_out("PACK", [np.zeros(shape)] * count, axis=axis).shape
    y = m.tensor("y", want, "int8", **(out_quant or Q))
    add_op(m, "PACK", xs, [y], "PackOptions", valuesCount=count if values_count is None else values_count, axis=axis)
    return m, xs[:-1] if const else xs, [y]


def unpack_model(shape, axis, num=None, out_quant=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    a = axis % len(shape)
    piece = tuple(shape[:a]) + tuple(shape[a + 1:])
    ys = [m.tensor(f"y{k}", piece, "int8", **(out_quant or Q)) for k in range(shape[a])]
    add_op(m, "UNPACK", [x], ys, "UnpackOptions", num=shape[a] if num is None else num, axis=axis)
    return m, [x], ys


def block_model(opname, shape, block, out_shape=None, out_quant=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    want = out_shape or numpy_out(opname, [np.zeros(shape)], block=block).shape
    y = m.tensor("y", want, "int8", **(out_quant or Q))
    options = "DepthToSpaceOptions" if opname == "DEPTH_TO_SPACE" else "SpaceToDepthOptions"
    add_op(m, opname, [x], [y], options, blockSize=block)
    return m, [x], [y]


def gather_model(shape, indices, axis=0, batch_dims=0, dtype="int32", dynamic=False, out_shape=None, out_quant=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    idx = np.asarray(indices)
    i = m.tensor("indices", idx.shape, dtype, data=None if dynamic else idx)
    want = out_shape or numpy_out("GATHER", [np.zeros(shape)], indices=idx, axis=axis, batch_dims=batch_dims).shape
    y = m.tensor("y", want, "int8", **(out_quant or Q))
    add_op(m, "GATHER", [x, i], [y], "GatherOptions", axis=axis, batchDims=batch_dims)
    return m, [x, i] if dynamic else [x], [y]


def space_batch_model(opname, shape, block, amounts, out_shape=None, out_quant=None):
    m = ModelBuilder()
    x = m.tensor("x", shape, "int8", **Q)
    key = "pads" if opname == "SPACE_TO_BATCH_ND" else "crops"
    want = out_shape or numpy_out(opname, [np.zeros(shape)], block=block, **{key: amounts}).shape
    b = m.tensor("block", [len(block)], "int32", data=list(block))
    a = m.tensor(key, [len(amounts), 2], "int32", data=np.array(amounts, np.int32).reshape(-1, 2))
    y = m.tensor("y", want, "int8", **(out_quant or Q))
    add_op(m, opname, [x, b, a], [y], "SpaceToBatchNDOptions" if key == "pads" else "BatchToSpaceNDOptions")
    return m, [x], [y]


def dilated_conv_model(depthwise=False, h=9, w=9, cin=3, cout=4, dil=2, seed=3, inner="VALID", pads=None, crops=None,
                       fused=False):
    """The TFLite converter's atrous pattern: SPACE_TO_BATCH_ND -> a 3x3 conv of stride 1 ->
    BATCH_TO_SPACE_ND, by default with the paddings and crops TensorFlow's
    required_space_to_batch_paddings gives for a SAME atrous conv; `fused`: the one CONV_2D of
    dilation `dil`, SAME, with the same weights, that it computes."""
    rng = np.random.default_rng(seed)
    k, s_in, s_out = 3, 0.02, 0.05
    cout = cin if depthwise else cout
    base = (k - 1) * dil if inner == "VALID" else 0
    extra = [(-(d + base)) % dil for d in (h, w)]
    pads = pads or [[base // 2, base - base // 2 + e] for e in extra]
    crops = crops or [[0, e] for e in extra]
    m = ModelBuilder()
    x = m.tensor("x", [1, h, w, cin], scale=s_in, zero_point=-3)
    taps = k * k * (1 if depthwise else cin)
    s_w = (s_out * 40 / (s_in * np.sqrt(taps) * 74 * 74) * rng.uniform(0.5, 2.0, cout)).astype(np.float32)
    wshape = [1, k, k, cout] if depthwise else [cout, k, k, cin]
    wt = m.tensor("w", wshape, scale=s_w, zero_point=np.zeros(cout), axis=3 if depthwise else 0,
                  data=weights(rng, wshape))
    bt = m.tensor("b", [cout], "int32", scale=np.float32(s_in) * s_w, zero_point=np.zeros(cout),
                  data=bias(rng, cout, 3000))
    conv = {"strideH": 1, "strideW": 1, "fusedActivationFunction": "NONE",
            **({"depthMultiplier": 1} if depthwise else {})}
    opname = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    hs, ws = (h + sum(pads[0])) // dil, (w + sum(pads[1])) // dil
    ch, cw = (hs - k + 1, ws - k + 1) if inner == "VALID" else (hs, ws)
    oh, ow = ch * dil - sum(crops[0]), cw * dil - sum(crops[1])
    y = m.tensor("y", [1, oh, ow, cout], scale=s_out, zero_point=5)
    if fused:
        m.op(opname, [x, wt, bt], [y], padding="SAME", dilationHFactor=dil, dilationWFactor=dil, **conv)
        return m, [x], [y]
    blk = m.tensor("block", [2], "int32", data=[dil, dil])
    pd = m.tensor("pads", [2, 2], "int32", data=np.array(pads, np.int32))
    sb = m.tensor("sb", [dil * dil, hs, ws, cin], scale=s_in, zero_point=-3)
    add_op(m, "SPACE_TO_BATCH_ND", [x, blk, pd], [sb], "SpaceToBatchNDOptions")
    cv = m.tensor("cv", [dil * dil, ch, cw, cout], scale=s_out, zero_point=5)
    m.op(opname, [sb, wt, bt], [cv], padding=inner, dilationHFactor=1, dilationWFactor=1, **conv)
    cr = m.tensor("crops", [2, 2], "int32", data=np.array(crops, np.int32))
    add_op(m, "BATCH_TO_SPACE_ND", [cv, blk, cr], [y], "BatchToSpaceNDOptions")
    return m, [x], [y]


# -- the cases: name -> (builder, args) ---------------------------------------------------------------
rng = np.random.default_rng(5)
CASES = {
    "pack_axis0": (pack_model, ((2, 3), 3, 0)),
    "pack_axis_neg": (pack_model, ((2, 3, 4), 2, -1)),
    "pack_mid": (pack_model, ((2, 3), 4, 1)),
    "pack_r1": (pack_model, ((5,), 2, 1)),
    "pack_r3_axis1": (pack_model, ((2, 1, 3), 3, -3)),
    "pack_ten": (pack_model, ((2, 2), 10, 2)),  # a tree of concats: at most 8 inputs each
    "pack_one": (pack_model, ((3, 4), 1, 0)),  # a reshape only
    "pack_const": (pack_model, ((2, 3), 3, 1, None, None, None, True)),
    "depth_to_space_2": (block_model, ("DEPTH_TO_SPACE", (1, 2, 3, 8), 2)),
    "depth_to_space_3": (block_model, ("DEPTH_TO_SPACE", (2, 3, 2, 18), 3)),
    "depth_to_space_4": (block_model, ("DEPTH_TO_SPACE", (1, 1, 1, 16), 4)),
    "depth_to_space_1": (block_model, ("DEPTH_TO_SPACE", (1, 2, 2, 3), 1)),
    "space_to_depth_2": (block_model, ("SPACE_TO_DEPTH", (1, 4, 6, 3), 2)),
    "space_to_depth_3": (block_model, ("SPACE_TO_DEPTH", (2, 6, 6, 2), 3)),
    "space_to_depth_1x1": (block_model, ("SPACE_TO_DEPTH", (1, 2, 2, 5), 2)),
    "gather_axis0": (gather_model, ((5, 3), [4, 0, 2])),
    "gather_axis_neg": (gather_model, ((2, 3, 6), [5, 4, 3, 1], -1)),
    "gather_int64_2d": (gather_model, ((4, 6), [[0, 2], [4, 5]], 1, 0, "int64")),
    "gather_batch": (gather_model, ((2, 5, 3), [[0, 4], [3, 3]], 1, 1)),
    "gather_batch_neg": (gather_model, ((2, 4), [[3, 0, 1], [2, 2, 1]], 1, -1)),
    "gather_batch_same": (gather_model, ((3, 4, 2), [[1, 2]] * 3, -2, 1)),
    "gather_batch_all": (gather_model, ((2, 5, 3), [4, 1], 1, 1)),  # batch_dims = the indices' rank
    "gather_batch_outer": (gather_model, ((2, 3, 4, 2), [[0, 3], [2, 1]], 2, 1)),
    "gather_reversed_r1": (gather_model, ((7,), [6, 5, 4, 3, 2, 1, 0])),
    "gather_scalar": (gather_model, ((4, 3), np.int32(2))),
    "gather_r4_stride": (gather_model, ((2, 3, 5, 4), [0, 2, 4], 2, 0, "int64")),
    "gather_permutation": (gather_model, ((20, 2), rng.permutation(20).astype(np.int32))),
    "space_to_batch_2x2": (space_batch_model, ("SPACE_TO_BATCH_ND", (1, 4, 4, 3), (2, 2), [[0, 0], [0, 0]])),
    "space_to_batch_pad": (space_batch_model, ("SPACE_TO_BATCH_ND", (1, 5, 3, 2), (2, 2), [[1, 0], [0, 1]])),
    "space_to_batch_3x2": (space_batch_model, ("SPACE_TO_BATCH_ND", (2, 6, 4, 2), (3, 2), [[0, 0], [1, 1]])),
    "space_to_batch_1x2": (space_batch_model, ("SPACE_TO_BATCH_ND", (2, 3, 4, 3), (1, 2), [[1, 1], [0, 0]])),
    "space_to_batch_3d": (space_batch_model, ("SPACE_TO_BATCH_ND", (2, 5, 3), (2,), [[1, 0]])),
    "batch_to_space_2x2": (space_batch_model, ("BATCH_TO_SPACE_ND", (4, 2, 2, 3), (2, 2), [[0, 0], [0, 0]])),
    "batch_to_space_crop": (space_batch_model, ("BATCH_TO_SPACE_ND", (4, 3, 2, 2), (2, 2), [[1, 0], [0, 1]])),
    "batch_to_space_3x2": (space_batch_model, ("BATCH_TO_SPACE_ND", (12, 2, 3, 2), (3, 2), [[1, 1], [0, 2]])),
    "batch_to_space_3d": (space_batch_model, ("BATCH_TO_SPACE_ND", (4, 3, 2), (2,), [[0, 1]])),
    "dilated_conv": (dilated_conv_model, ()),
    "dilated_depthwise": (dilated_conv_model, (True, 8, 7, 4)),
    "dilated_conv_3": (dilated_conv_model, (False, 10, 7, 2, 3, 3)),
    "dilated_inner_same": (dilated_conv_model, (False, 8, 6, 3, 4, 2, 4, "SAME")),
    # crops reaching into the image: the fused conv would need negative padding, the chain stays
    "dilated_cropped": (dilated_conv_model, (False, 8, 8, 2, 3, 2, 5, "VALID", [[0, 0], [0, 0]], [[1, 0], [0, 1]])),
}
UNPACKS = {
    "unpack_axis0": ((3, 4), 0),
    "unpack_axis_neg": ((2, 3, 4), -1),
    "unpack_r4": ((1, 2, 3, 2), 2),
    "unpack_r1": ((3,), 0),
}
# TFLite Micro: int32 indices only, and the operators it registers
# (its SPACE_TO_BATCH_ND pads with uninitialised memory: padded ones are refused under its semantics)
TFLM = ["pack_axis0", "pack_axis_neg", "pack_ten", "depth_to_space_2", "space_to_depth_3", "gather_axis0",
        "gather_batch", "gather_batch_neg", "space_to_batch_2x2", "batch_to_space_crop", "batch_to_space_3d",
        "dilated_inner_same"]


def case(name: str) -> Case:
    if name in UNPACKS:
        m, xs, ys = unpack_model(*UNPACKS[name])
    else:
        build, args = CASES[name]
        m, xs, ys = build(*args)
    return Case(m, xs, ys, n=2, seed=61)


@pytest.mark.parametrize("name", list(CASES))
def test_moves_match_tflite(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflite",))


@pytest.mark.parametrize("name", TFLM)
def test_moves_match_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(UNPACKS))
def test_unpack_matches_on_every_output(tmp_path, name, golden):
    c = case(name)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    graph = load_tflite(path, semantics=golden)
    assert [op.kind for op in graph.ops] == ["strided_slice"] * len(graph.outputs)
    shape, axis = UNPACKS[name]
    for k, inputs in enumerate(case_sets(c, graph)):
        values = reference.run(graph, inputs)
        golds = run_golden(path, inputs, golden, n_outputs=len(graph.outputs))
        pieces = np.moveaxis(inputs[0], axis, 0)
        for j, (out, gold) in enumerate(zip(graph.outputs, golds)):
            mine = values[out]
            assert mine.dtype == gold.dtype and mine.tobytes() == gold.tobytes(), f"{out} differs on set {k}"
            assert np.array_equal(mine, pieces[j]), out


def test_the_reference_computes_what_numpy_does(tmp_path):
    """The lowerings against TensorFlow's definitions written with numpy (the goldens aside)."""
    for name, (build, args) in CASES.items():
        c = case(name)
        graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, name))
        inputs = case_sets(c, graph)[0]
        got = reference.run(graph, inputs)[graph.outputs[0]]
        if build is pack_model and len(args) < 7:
            want = numpy_out("PACK", inputs, axis=args[2])
        elif build is block_model:
            want = numpy_out(args[0], inputs, block=args[2])
        elif build is gather_model:
            a = list(args) + [0] * (4 - len(args))
            want = numpy_out("GATHER", inputs, indices=args[1], axis=a[2], batch_dims=a[3])
        elif build is space_batch_model and args[0] == "BATCH_TO_SPACE_ND":
            want = numpy_out(args[0], inputs, block=args[2], crops=args[3])
        elif build is space_batch_model:  # the padding is the zero point
            x = inputs[0].astype(np.int64) - Q["zero_point"]
            want = numpy_out(args[0], [x], block=args[2], pads=args[3]) + Q["zero_point"]
        else:
            continue
        assert np.array_equal(got, want), name


def test_block_moves_lower_to_walks_of_four_loops(tmp_path):
    """A 6-D block rearrangement is one transpose when its walk merges to 4 loops, else two; none
    needs more loops than the copy kernels have."""
    for name in ("depth_to_space_3", "space_to_depth_3", "space_to_batch_3x2", "batch_to_space_3x2",
                 "space_to_batch_1x2", "depth_to_space_1"):
        c = case(name)
        graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, name))
        kinds = [op.kind for op in graph.ops]
        moves = [op for op in graph.ops if op.kind == "transpose"]
        want = {"depth_to_space_3": 1, "space_to_depth_3": 1, "space_to_batch_3x2": 2, "batch_to_space_3x2": 2,
                "space_to_batch_1x2": 1, "depth_to_space_1": 0}[name]
        assert len(moves) == want, (name, kinds)
        for op in moves:
            walk = loops.transpose(graph.tensors[op.inputs[0]].shape, op.a.perm).collapse(name)
            assert len(walk.n) == loops.RANK
        assert graph.ops[-1].outputs == graph.outputs
        assert len({op.name for op in graph.ops}) == len(graph.ops)


def random_case(seed: int, tflm: bool = False) -> Case:
    """A seeded draw from one operator's option space: shapes, blocks, paddings, crops, axes
    (negative too), batch_dims, index dtypes and ranks; `tflm`: what TFLite Micro runs (int32
    indices, SPACE_TO_BATCH_ND unpadded)."""
    r = np.random.default_rng(1000 + seed)
    kind = ["PACK", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "GATHER", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"][seed % 6]
    dims = lambda k, hi=4: tuple(int(d) for d in r.integers(1, hi, size=k))  # noqa: E731
    if kind == "PACK":
        shape = dims(int(r.integers(0, 4)))
        rank = len(shape) + 1
        m, xs, ys = pack_model(shape, int(r.integers(1, 5)), int(r.integers(-rank, rank)))
    elif kind == "DEPTH_TO_SPACE":
        b = int(r.integers(1, 4))
        n, h, w, c = dims(4)
        m, xs, ys = block_model(kind, (n, h, w, c * b * b), b)
    elif kind == "SPACE_TO_DEPTH":
        b = int(r.integers(1, 4))
        n, h, w, c = dims(4)
        m, xs, ys = block_model(kind, (n, h * b, w * b, c), b)
    elif kind == "GATHER":
        shape = dims(int(r.integers(1, 5)), 5)
        axis = int(r.integers(0, len(shape)))
        bd = int(r.integers(0, axis + 1))
        ishape = shape[:bd] + dims(int(r.integers(0, 3)))
        idx = r.integers(0, shape[axis], size=ishape)
        dtype = ["int32", "int64"][int(r.integers(0, 2))] if not tflm else "int32"
        m, xs, ys = gather_model(shape, idx.astype(dtype), axis - len(shape) * int(r.integers(0, 2)),
                                 bd - (len(ishape) if bd and r.integers(0, 2) else 0), dtype)
    else:
        three = bool(r.integers(0, 2))
        block = dims(1 if three else 2)
        n = int(r.integers(1, 3))
        if kind == "SPACE_TO_BATCH_ND":
            space = dims(len(block), 6)
            pads = [[int(r.integers(0, 3)), int(r.integers(0, 3))] for _ in block]
            if tflm:  # its kernel pads with uninitialised memory
                pads, space = [[0, 0] for _ in block], tuple(d * b for d, b in zip(dims(len(block)), block))
            for p, d, b in zip(pads, space, block):
                p[1] += (-(d + p[0] + p[1])) % b
            m, xs, ys = space_batch_model(kind, (n, *space, int(r.integers(1, 4))), block, pads)
        else:
            space = dims(len(block), 4)
            crops = []
            for d, b in zip(space, block):
                top = int(r.integers(0, d * b))
                crops.append([top, int(r.integers(0, d * b - top))])
            m, xs, ys = space_batch_model(kind, (n * int(np.prod(block)), *space, int(r.integers(1, 4))), block, crops)
    return Case(m, xs, ys, n=2, seed=seed)


@pytest.mark.parametrize("seed", range(36))
def test_random_options_match_tflite(tmp_path, seed):
    check_case(random_case(seed), tmp_path, goldens=("tflite",))


@pytest.mark.parametrize("seed", range(12))
def test_random_options_match_tflm(tmp_path, seed):
    check_case(random_case(seed, tflm=True), tmp_path, goldens=("tflm",))


FUSED = ["dilated_conv", "dilated_depthwise", "dilated_conv_3", "dilated_inner_same"]


@pytest.mark.parametrize("name", FUSED)
def test_atrous_pattern_is_the_dilated_conv_it_computes(tmp_path, name):
    """SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND loads as one conv, op for op the one a
    dilated SAME CONV_2D / DEPTHWISE_CONV_2D of the same weights loads to (the goldens above hold it
    bit-exact with LiteRT)."""
    c = case(name)
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "chain"))
    m, xs, ys = dilated_conv_model(*CASES[name][1], fused=True)
    direct = load_tflite(save(m, tmp_path, xs, ys, "direct"))
    assert [op.kind for op in graph.ops] == [op.kind for op in direct.ops] == [direct.ops[0].kind]
    mine, want = graph.ops[0], direct.ops[0]
    assert mine.inputs[0] == graph.inputs[0] and mine.outputs == graph.outputs
    assert mine.a.dilation == want.a.dilation == (CASES[name][1][5] if len(CASES[name][1]) > 5 else 2,) * 2
    assert mine.attrs.keys() == want.attrs.keys()
    assert all(np.array_equal(mine.attrs[k], want.attrs[k]) for k in want.attrs), (mine.attrs, want.attrs)
    # the intermediates are gone (the operators' constant operands stay, as every operator's do)
    assert sorted(set(graph.tensors) - {"block", "pads", "crops"}) == sorted(direct.tensors)


@pytest.mark.parametrize("seed", range(8))
def test_random_atrous_chains_fuse_and_match_tflite(tmp_path, seed):
    r = np.random.default_rng(2000 + seed)
    h, w, dil = int(r.integers(4, 12)), int(r.integers(4, 12)), int(r.integers(2, 5))
    inner = ["VALID", "SAME"][seed % 2]
    c = Case(*dilated_conv_model(bool(seed // 2 % 2), h, w, int(r.integers(1, 4)), int(r.integers(1, 5)), dil, seed,
                                 inner), n=2, seed=seed)
    check_case(c, tmp_path, goldens=("tflite",))
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "again"))
    assert len(graph.ops) == 1 and graph.ops[0].a.dilation == (dil, dil)


def test_an_atrous_chain_that_does_not_fuse_still_matches(tmp_path):
    c = case("dilated_cropped")
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    kinds = [op.kind for op in graph.ops]
    assert "conv2d" in kinds and "strided_slice" in kinds and graph.tensors["sb"].shape[0] == 4


def test_gather_lowers_to_one_slice_per_run(tmp_path):
    for name, slices_, concats in (("gather_axis_neg", 2, 1), ("gather_reversed_r1", 1, 0),
                                   ("gather_r4_stride", 1, 0), ("gather_batch_same", 1, 0),
                                   ("gather_batch", 3, 2)):
        c = case(name)
        graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, name))
        kinds = [op.kind for op in graph.ops]
        assert (kinds.count("strided_slice"), kinds.count("concat")) == (slices_, concats), (name, kinds)
    c = case("gather_permutation")
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, "perm"))
    assert all(len(op.inputs) <= 8 for op in graph.ops if op.kind == "concat")


def only_reshapes(tmp_path, name: str, c: Case) -> bool:
    """The lowering moves no byte (PACK of one input, blocks of one pixel): reshapes only."""
    return {op.kind for op in load_tflite(save(c.m, tmp_path, c.inputs, c.outputs, name)).ops} == {"reshape"}


@pytest.mark.parametrize("target", targets(*KINDS))
def test_moves_on_targets(tmp_path, target):
    cases = {n: case(n) for n in [*CASES, *UNPACKS]} | {f"random_{s}": random_case(s) for s in range(12)}
    # HLS: a lone reshape is an alias, and the top needs a layer between an input and an output
    cases = {n: c for n, c in cases.items() if target != "hls" or not only_reshapes(tmp_path, n, c)}
    check_targets(tmp_path, target, cases, tflm=["gather_batch", "batch_to_space_crop"])


# -- refusals ----------------------------------------------------------------------------------------------
OTHER_GRID = {"scale": 0.05, "zero_point": 3}
REFUSALS = {
    "gather_out_of_range": (lambda: gather_model((5, 3), [1, 5], out_shape=(2, 3)),
                            r"index 5 is outside the 5 entries of axis 0"),
    "gather_negative_index": (lambda: gather_model((5, 3), [-1, 2], out_shape=(2, 3)),
                              r"index -1 is outside the 5 entries of axis 0"),
    "gather_int16_indices": (lambda: gather_model((5, 3), [1, 2], dtype="int16", out_shape=(2, 3)),
                             r"indices 'indices' are int16; GATHER takes int32 or int64 indices"),
    "gather_axis": (lambda: gather_model((5, 3), [1], axis=2, out_shape=(1, 3)), r"axis 2 is outside \[-2, 2\)"),
    "gather_batch_dims": (lambda: gather_model((2, 3), [[0], [1]], axis=0, batch_dims=1, out_shape=(2, 1)),
                          r"batch_dims 1 must lie in \[0, axis 0\]"),
    "gather_grid": (lambda: gather_model((5, 3), [1], out_quant=OTHER_GRID),
                    r"GATHER changes the quantization .*; its kernel copies codes"),
    "gather_too_many_runs": (lambda: gather_model((600,), np.random.default_rng(1).permutation(600)),
                             r"its 600 indices make more than 256 runs of evenly spaced indices, one copy each; "
                             r"dmxgen lowers GATHER to at most 256 copies"),
    "pack_grid": (lambda: pack_model((2, 3), 2, 0, out_quant=OTHER_GRID), r"PACK changes the quantization"),
    "pack_count": (lambda: pack_model((2, 3), 2, 0, values_count=3), r"values_count 3 differs from its 2 inputs"),
    "pack_shape": (lambda: pack_model((2, 3), 2, 0, out_shape=(2, 3, 2)),
                   r"output shape \[2, 3, 2\] differs from the computed \[2, 2, 3\]"),
    "unpack_num": (lambda: unpack_model((3, 4), 0, num=2),
                   r"num 2 must equal the 3 outputs and the 3 entries of axis 0"),
    "depth_to_space_channels": (lambda: block_model("DEPTH_TO_SPACE", (1, 2, 2, 6), 2, out_shape=(1, 4, 4, 1)),
                                r"6 channels are not a multiple of block_size 2 squared"),
    "depth_to_space_block": (lambda: block_model("DEPTH_TO_SPACE", (1, 2, 2, 4), 0, out_shape=(1, 2, 2, 4)),
                             r"block_size 0 must be at least 1"),
    "space_to_depth_grid": (lambda: block_model("SPACE_TO_DEPTH", (1, 2, 2, 1), 2, out_quant=OTHER_GRID),
                            r"SPACE_TO_DEPTH changes the quantization"),
    "space_to_depth_size": (lambda: block_model("SPACE_TO_DEPTH", (1, 3, 2, 1), 2, out_shape=(1, 1, 1, 4)),
                            r"height 3 and width 2 must be multiples of block_size 2"),
    "space_to_batch_multiple": (lambda: space_batch_model("SPACE_TO_BATCH_ND", (1, 5, 4, 1), (2, 2), [[0, 0], [0, 0]],
                                                          out_shape=(4, 2, 2, 1)),
                                r"padded spatial size \[5, 4\] is not a multiple of block_shape \[2, 2\]"),
    "space_to_batch_negative": (lambda: space_batch_model("SPACE_TO_BATCH_ND", (1, 4, 4, 1), (2, 2),
                                                          [[-2, 2], [0, 0]], out_shape=(4, 2, 2, 1)),
                                r"paddings \[\[-2, 2\], \[0, 0\]\] must not be negative"),
    "space_to_batch_rank": (lambda: space_batch_model("SPACE_TO_BATCH_ND", (4, 4), (2,), [[0, 0]],
                                                      out_shape=(8, 2)),
                            r"SPACE_TO_BATCH_ND takes a 3-D or 4-D input, got \[4, 4\]"),
    "batch_to_space_batch": (lambda: space_batch_model("BATCH_TO_SPACE_ND", (3, 2, 2, 1), (2, 2), [[0, 0], [0, 0]],
                                                       out_shape=(1, 4, 4, 1)),
                             r"batch 3 is not a multiple of the block's 4 entries"),
    "batch_to_space_block": (lambda: space_batch_model("BATCH_TO_SPACE_ND", (4, 2, 2, 1), (0, 2), [[0, 0], [0, 0]],
                                                       out_shape=(1, 4, 4, 1)),
                             r"block_shape \[0, 2\] must be at least 1"),
    "batch_to_space_crops": (lambda: space_batch_model("BATCH_TO_SPACE_ND", (4, 2, 2, 1), (2, 2), [[2, 2], [0, 0]],
                                                       out_shape=(1, 1, 4, 1)),
                             r"crops \[\[2, 2\], \[0, 0\]\] leave nothing of the \[4, 4\] spatial size"),
}


def test_tflm_semantics_refuse_a_padded_space_to_batch(tmp_path):
    m, xs, ys = space_batch_model("SPACE_TO_BATCH_ND", (1, 5, 3, 2), (2, 2), [[1, 0], [0, 1]])
    path = save(m, tmp_path, xs, ys)
    load_tflite(path)  # LiteRT pads with the zero point
    with pytest.raises(DmxError, match=r"\(SPACE_TO_BATCH_ND, output 'y'\): TFLite Micro pads SPACE_TO_BATCH_ND with "
                                       r"uninitialised memory .*; unpadded ones are supported"):
        load_tflite(path, semantics="tflm")


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusals_name_the_layer(tmp_path, name):
    build, message = REFUSALS[name]
    m, xs, ys = build()
    with pytest.raises(DmxError, match=r"operator 0 \([A-Z_]+, output '\w+'\): .*" + message):
        load_tflite(save(m, tmp_path, xs, ys))
