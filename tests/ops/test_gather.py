"""GATHER by run-time indices (ops/gather.py): axis 0, 1 and negative, batch_dims 0 and 1 (and -1), int8
and int16 params, constant (an embedding table) and computed params, int32 and int64 indices of rank 0 to 2,
zero points at the range ends, against LiteRT (and TFLite Micro, int8 by int32) and on the targets (host C
with ASan / UBSan, the M55, HLS csim); indices computed by ARG_MAX; constant int16 indices (the lowering); an
embedding model (int32 token ids -> GATHER -> FULLY_CONNECTED), also exported and verified on the export's
own random valid ids. A bad index: LiteRT fails at invoke, the reference refuses it naming the layer, the C
fills the slice with the zero point and returns DMX_ERROR_INDEX without reading out of bounds
(docs/gather.md)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S

from dmxgen import reference
from dmxgen.backends import host
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, bias, check_case, save, weights
from ._targets import check_targets, targets

VALID_ATTRS = [{"axis": 0}, {"axis": 1, "batch_dims": 1}]
GRID = {"int8": (0.05, -7), "int16": (0.001, 0)}


def gather_model(shape, dtype, const, ishape, axis, batch_dims=0, index="int32", zp=None, seed=0,
                 out_shape=None, out_grid=None, options=True):
    """GATHER of params `shape` (a constant table when `const`) by a run-time index input of `ishape`."""
    m = ModelBuilder()
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    scale, zp0 = GRID[dtype]
    zp = zp0 if zp is None else zp
    table = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    x = m.tensor("params", shape, dtype, scale=scale, zero_point=zp, data=table if const else None)
    i = m.tensor("ids", ishape, index)
    a, bd = axis % len(shape), batch_dims + len(ishape) if batch_dims < 0 else batch_dims
    want = out_shape or tuple(shape[:a]) + tuple(ishape[bd:]) + tuple(shape[a + 1:])
    os, oz = out_grid or (scale, zp)
    y = m.tensor("y", want, dtype, scale=os, zero_point=oz)
    m.op("GATHER", [x, i], [y])
    if options:
        o = S.GatherOptionsT()
        o.axis, o.batchDims = axis, batch_dims
        op = m.sg.operators[-1]
        op.builtinOptionsType, op.builtinOptions = S.BuiltinOptions.GatherOptions, o
    return m, ([i] if const else [x, i]), [y], table


CASES = {  # params shape, dtype, constant params, indices shape, axis, batch_dims, index dtype, zero point
    "table_rank1_ids": ((10, 4), "int8", True, (6,), 0, 0, "int32", -7),
    "table_rank2_ids": ((12, 3), "int8", True, (2, 3), 0, 0, "int32", -128),
    "table_int64_ids": ((7, 5), "int8", True, (4,), 0, 0, "int64", 127),
    "scalar_id": ((6, 4), "int8", True, (), 0, 0, "int32", 0),
    "axis1": ((3, 7, 2), "int8", False, (4,), 1, 0, "int32", -7),
    "axis1_rank2_ids": ((2, 5, 3), "int8", False, (2, 2), 1, 0, "int64", 127),
    "axis_neg": ((2, 3, 6), "int8", False, (5,), -1, 0, "int32", -128),
    "batch1": ((2, 5, 3), "int8", False, (2, 4), 1, 1, "int32", 3),
    "batch_neg": ((3, 4, 2), "int8", True, (3, 2), -2, -1, "int32", -7),
    "batch1_last_axis": ((2, 3, 6), "int8", False, (2, 3), -1, 1, "int64", 0),
    "int16_table": ((9, 5), "int16", True, (3, 2), 0, 0, "int32", 0),
    "int16_axis1_batch1": ((2, 6, 3), "int16", False, (2, 3), 1, 1, "int64", 0),
    "int16_axis_neg": ((4, 5), "int16", False, (3,), -1, 0, "int32", 0),
}


def index_sets(rng, ishape, size, count):
    """`count` random index tensors in [0, size), the first with both ends of the axis."""
    sets = [rng.integers(0, size, size=ishape) for _ in range(count)]
    flat = sets[0].reshape(-1)
    flat[0], flat[-1] = 0, size - 1
    return sets


def case(name: str) -> Case:
    shape, dtype, const, ishape, axis, bd, index, zp = CASES[name]
    m, ins, outs, _ = gather_model(shape, dtype, const, ishape, axis, bd, index, zp, seed=len(name))
    rng = np.random.default_rng(len(name))
    ids = [i.astype(index) for i in index_sets(rng, ishape, shape[axis], 4)]
    if const:
        sets = [[i] for i in ids]
    else:  # computed params: random codes, then both ends of the dtype
        info = np.iinfo(dtype)
        params = [rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype) for _ in ids[:2]]
        params += [np.full(shape, info.min, dtype), np.full(shape, info.max, dtype)]
        sets = [[p, i] for p, i in zip(params, ids)]
    return Case(m, ins, outs, n=0, extremes=False, extra=sets)


def embedding_model(vocab=50, dim=8, tokens=6, classes=4, seed=5):
    """int32 token ids [1, tokens] -> GATHER of an int8 table [vocab, dim] -> FULLY_CONNECTED of [1, tokens * dim]."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    s_e, z_e = 0.02, -5
    ids = m.tensor("ids", (1, tokens), "int32")
    table = m.tensor("embedding", (vocab, dim), "int8", scale=s_e, zero_point=z_e,
                     data=weights(rng, (vocab, dim), -128))
    e = m.tensor("embedded", (1, tokens, dim), "int8", scale=s_e, zero_point=z_e)
    m.op("GATHER", [table, ids], [e])
    k = tokens * dim
    s_w = np.array([0.01], np.float32)
    w = m.tensor("w", (classes, k), "int8", scale=s_w, zero_point=[0], data=weights(rng, (classes, k)))
    b = m.tensor("b", (classes,), "int32", scale=np.float32(s_e) * s_w, zero_point=[0], data=bias(rng, classes))
    y = m.tensor("logits", (1, classes), "int8", scale=0.12, zero_point=2)
    m.op("FULLY_CONNECTED", [e, w, b], [y])
    sets = [[rng.integers(0, vocab, size=(1, tokens)).astype(np.int32)] for _ in range(6)]
    return Case(m, [ids], [y], n=0, extremes=False, extra=sets)


def const_index_case(shape, indices, axis, dtype="int16") -> Case:
    """GATHER of constant indices (lowered to strided slices and concats, frontends/tflite_ops/moves.py), on
    int16 codes too: random codes and both ends of the dtype."""
    m, _, outs, _ = gather_model(shape, dtype, False, np.shape(indices), axis)
    m.sg.tensors[1].buffer = len(m.model.buffers)  # the indices become a constant
    b = S.BufferT()
    b.data = np.asarray(indices, np.int32).tobytes()
    m.model.buffers.append(b)
    return Case(m, [0], outs, n=4, seed=3)


CONST_CASES = {"const_int16_axis0": ((6, 3), [5, 0, 2, 2], 0),
               "const_int16_axis_neg": ((2, 3, 5), [[4, 1], [0, 3]], -1)}


@pytest.mark.parametrize("name", list(CONST_CASES))
def test_constant_indices_of_int16_match_litert(tmp_path, name):
    c = const_index_case(*CONST_CASES[name])
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    assert "gather" not in {op.kind for op in graph.ops} and graph.tensors[graph.outputs[0]].dtype == "int16"
    check_case(c, tmp_path, min_distinct=4)


def arg_max_ids_case() -> Case:
    """Indices computed by the model: ARG_MAX's int32 output (in the arena) picks rows of a constant table."""
    m = ModelBuilder()
    rng = np.random.default_rng(9)
    x = m.tensor("x", (3, 5), "int8", scale=0.1, zero_point=0)
    a = m.tensor("axis", [1], "int32", data=[1])
    ids = m.tensor("ids", (3,), "int32")
    m.op("ARG_MAX", [x, a], [ids], outputType=2)
    table = m.tensor("table", (5, 4), "int8", scale=0.05, zero_point=-7, data=weights(rng, (5, 4), -128))
    y = m.tensor("y", (3, 4), "int8", scale=0.05, zero_point=-7)
    m.op("GATHER", [table, ids], [y])
    return Case(m, [x], [y], n=6, seed=2, extremes=False)


def test_indices_from_arg_max_match_litert(tmp_path):
    c = arg_max_ids_case()
    assert [op.kind for op in load_tflite(save(c.m, tmp_path, c.inputs, c.outputs)).ops] == ["arg_max", "gather"]
    check_case(c, tmp_path, min_distinct=4)


@pytest.mark.parametrize("name", list(CASES))
def test_gather_matches_litert(tmp_path, name):
    check_case(case(name), tmp_path, min_distinct=4)


TFLM = [n for n, c in CASES.items() if c[1] == "int8" and c[6] == "int32"]  # TFLite Micro: int8 by int32 only


@pytest.mark.parametrize("name", TFLM)
def test_gather_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",), min_distinct=4)


def test_embedding_matches_litert(tmp_path):
    out = check_case(embedding_model(), tmp_path, min_distinct=4)
    assert out.shape == (6, 1, 4)


@pytest.mark.skipif(not host.have_compiler(), reason="no host gcc")
def test_embedding_exports_and_verifies_with_random_ids(tmp_path):
    """`dmxgen export` and `dmxgen verify` make their own vectors: random ids, all valid (below the vocabulary),
    distinct over the sets; the C is bit-exact on them."""
    from dmxgen.targets import export, verify_folder

    c = embedding_model()
    out = tmp_path / "out"
    manifest = export(save(c.m, tmp_path, c.inputs, c.outputs), out, targets=("c",), n_vectors=6)
    from dmxgen.backends.c import manifest_io

    ios = manifest_io(manifest, "input")
    assert [(io["name"], io["ctype"], io["elem_bytes"]) for io in ios] == [("ids", "int32_t", 4)]
    assert "typedef int32_t dmx_input_t;" in (out / "model.h").read_text()
    report = verify_folder(out, n_inputs=6, opt="-O1")
    assert report["bit_exact"] and report["inputs"] == 6
    from dmxgen.vectors import random_inputs

    ids = np.stack([s[0] for s in random_inputs(load_tflite(save(c.m, tmp_path, c.inputs, c.outputs)), 6, 0)])
    assert ids.dtype == np.int32 and 0 <= ids.min() and ids.max() < 50 and np.unique(ids).size > 20


def test_runtime_indices_make_one_gather_op(tmp_path):
    """Run-time indices: one gather op, its attrs the normalised axis and batch_dims; the constant table stays
    a constant input (no layer copies it)."""
    c = case("batch_neg")
    graph = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    assert [(op.kind, op.attrs) for op in graph.ops] == [("gather", {"axis": 1, "batch_dims": 1})]
    assert graph.tensors[graph.ops[0].inputs[0]].is_const and graph.inputs == ["ids"]


@pytest.mark.parametrize("target", targets("gather"))
def test_gather_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES} | {"embedding": embedding_model(),
                                                                           "arg_max_ids": arg_max_ids_case()}
                  | {name: const_index_case(*args) for name, args in CONST_CASES.items()})


# -- bad indices ------------------------------------------------------------------------------------
def table_model(tmp_path, index="int32"):
    m, ins, outs, table = gather_model((5, 3), "int8", True, (4,), 0, index=index, zp=-7)
    return save(m, tmp_path, ins, outs), table


@pytest.mark.parametrize("bad", [5, -1])
def test_a_bad_index_fails_in_litert_and_in_the_reference(tmp_path, bad):
    path, _ = table_model(tmp_path)
    ids = np.array([1, bad, 0, 4], np.int32)
    with pytest.raises(DmxError, match="gather index out of bounds"):
        run_golden(path, [ids])
    with pytest.raises(DmxError, match=rf"op 'gather_0' \(gather\): index {bad} is outside the 5 entries of axis 0; "
                                       "LiteRT fails on it at invoke"):
        reference.run(load_tflite(path), [ids])


def test_export_refuses_a_bad_index_in_the_test_vectors(tmp_path):
    from dmxgen.targets import export

    path, _ = table_model(tmp_path)
    npz = tmp_path / "ids.npz"
    np.savez(npz, ids=np.array([[0, 1, 2, 3], [0, 7, 2, 3]], np.int32))
    with pytest.raises(DmxError, match=r"op 'gather_0' \(gather\): index 7 is outside the 5 entries of axis 0"):
        export(path, tmp_path / "out", targets=("c",), input_files=(str(npz),), n_vectors=0)


MAIN = r"""
#include <stdio.h>
#include "model.h"
int main(void)
{
    static const %(ctype)s ids[4] = {1, %(bad)s, 0, 4};
    int8_t out[DMX_OUTPUT_SIZE];
    const int rc = dmx_model_run(ids, out);
    printf("rc=%%d ERROR_INDEX=%%d", rc, DMX_ERROR_INDEX);
    for (int i = 0; i < DMX_OUTPUT_SIZE; i++)
        printf(" %%d", out[i]);
    printf("\n");
    return 0;
}
"""


@pytest.mark.skipif(not host.have_compiler(), reason="no host gcc")
@pytest.mark.parametrize("index,bad", [("int32", "5"), ("int32", "-2147483647 - 1"), ("int64", "-1"),
                                       ("int64", "4294967296")])
def test_c_fills_a_bad_index_with_the_zero_point_and_returns_error_index(tmp_path, index, bad):
    """Under ASan and UBSan: no read outside the table; the slice is the zero point, the other rows are the
    table's, and dmx_model_run returns DMX_ERROR_INDEX (1); good indices return 0 (the vectors verify)."""
    from dmxgen.targets import export

    path, table = table_model(tmp_path, index)
    out = tmp_path / "out"
    export(path, out, targets=("c",), n_vectors=2)
    assert "#define DMX_ERROR_INDEX 1" in (out / "model.h").read_text()
    (tmp_path / "main.c").write_text(MAIN % {"ctype": f"{index}_t", "bad": bad})
    exe = tmp_path / "prog"
    cmd = [host.CC, *host.WARNINGS, "-O1", *host.SANITIZE, "-I", str(out), *sorted(map(str, out.glob("*.c"))),
           str(tmp_path / "main.c"), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, env={**host.os.environ, **host.RUN_ENV})
    assert r.returncode == 0, r.stderr
    want = np.concatenate([table[1], np.full(3, -7, np.int8), table[0], table[4]])
    assert r.stdout.split() == ["rc=1", "ERROR_INDEX=1", *map(str, want.tolist())]


HLS_MAIN = r"""
#include <cstdio>
#include "dmx_gather.h"
struct cfg {
    static const int out_size = 12;
    static const int32_t batches = 1, outer = 1, axis_size = 5, inner = 3, coords = 4, wide = 1, zero_point = -7;
};
int main() {
    int8_t params[15], out[12];
    for (int i = 0; i < 15; i++) params[i] = (int8_t)(10 + i);
    const int64_t ids[4] = {1, %s, 0, 4};
    dmx::gather<int8_t, int8_t, cfg>(params, ids, out);
    for (int i = 0; i < 12; i++) std::printf(" %%d", out[i]);
    std::printf("\n");
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("bad", ["5", "-1", "4294967296LL"])
def test_hls_kernel_fills_a_bad_index_with_the_zero_point(tmp_path, bad):
    """dmx_gather.h on its own, under ASan and UBSan: a bad index's slice is the zero point, nothing is read
    outside the params."""
    (tmp_path / "main.cpp").write_text(HLS_MAIN % bad)
    kernels = host.c_render.TEMPLATES.parent / "hls" / "kernels"
    exe = tmp_path / "prog"
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-O1", *host.SANITIZE, "-I", str(kernels),
                    str(tmp_path / "main.cpp"), "-o", str(exe)], check=True, capture_output=True, text=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, env={**host.os.environ, **host.RUN_ENV})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(v) for v in [13, 14, 15, -7, -7, -7, 10, 11, 12, 22, 23, 24]]


def test_models_without_gather_keep_their_model_c(tmp_path):
    """Only a model with a gather layer checks the kernels' status: other exports print as before."""
    from dmxgen.targets import export

    m = ModelBuilder()
    x = m.tensor("x", (2, 6), "int8", scale=0.05, zero_point=1)
    y = m.tensor("y", (2, 6), "int8", scale=0.05, zero_point=1)
    m.op("RELU", [x], [y])
    out = tmp_path / "out"
    export(save(m, tmp_path, [x], [y]), out, targets=("c",), n_vectors=1)
    assert "dmx_rc" not in (out / "model.c").read_text()
    assert "DMX_ERROR_INDEX" not in (out / "model.h").read_text()


# -- refusals ------------------------------------------------------------------------------------------
REFUSALS = {
    "axis": (dict(shape=(5, 3), ishape=(2,), axis=2, out_shape=(2, 3)), r"axis 2 is outside \[-2, 2\)"),
    "axis_negative": (dict(shape=(5, 3), ishape=(2,), axis=-3, out_shape=(2, 3)), r"axis -3 is outside \[-2, 2\)"),
    "batch_dims_past_axis": (dict(shape=(2, 3), ishape=(2, 1), axis=0, batch_dims=1, out_shape=(2, 1)),
                             r"batch_dims 1 must lie in \[0, axis 0\]"),
    "batch_dims_past_indices": (dict(shape=(2, 3, 4), ishape=(2,), axis=2, batch_dims=2, out_shape=(2, 3)),
                                r"batch_dims 2 must lie in \[0, axis 2\] and within the indices' 1 dims"),
    "batch_dims_differ": (dict(shape=(2, 3, 4), ishape=(3, 2), axis=1, batch_dims=1, out_shape=(2, 2, 4)),
                          r"the 1 batch dims of params \[2, 3, 4\] and indices \[3, 2\] differ"),
    "int16_indices": (dict(shape=(5, 3), ishape=(2,), axis=0, index="int16"),
                      r"indices 'ids' are int16; GATHER takes int32 or int64 indices"),
    "grid": (dict(shape=(5, 3), ishape=(2,), axis=0, out_grid=(0.05, 3)),
             r"GATHER changes the quantization .*; its kernel copies codes"),
    "out_shape": (dict(shape=(5, 3), ishape=(2,), axis=0, out_shape=(3, 3)),
                  r"output shape \[3, 3\] differs from the computed \[2, 3\]"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_gather_refusals(tmp_path, name):
    kw, message = REFUSALS[name]
    kw = dict(kw)
    m, ins, outs, _ = gather_model(kw.pop("shape"), "int8", False, kw.pop("ishape"), kw.pop("axis"), **kw)
    with pytest.raises(DmxError, match=message):
        load_tflite(save(m, tmp_path, ins, outs))


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="HLS csim needs g++, make")
@pytest.mark.parametrize("interface", ["array", "stream"])
def test_hls_index_inputs_are_ports_of_the_index_type(tmp_path, interface):
    """The indices enter dmx_top as they are: an int32_t / int64_t port (both interfaces), read by the layer's
    run() in their own type; csim is bit-exact on the export's random valid ids (the params a computed input)."""
    from dmxgen.backends.hls_csim import run_csim
    from dmxgen.targets import export

    m, ins, outs, _ = gather_model((4, 6, 3), "int8", False, (2, 2), 1, index="int64", zp=5)
    out = tmp_path / interface
    export(save(m, tmp_path, ins, outs), out, targets=("hls",), hls={"interface": interface}, n_vectors=3)
    top = (out / "hls" / "top.h").read_text()
    port = "const int64_t in1[DMX_IN1_SIZE]" if interface == "array" else "hls::stream<int64_t> &in1"
    assert port in top
    r = run_csim(out, opt="-O1")
    assert r.returncode == 0 and "PASS: 3 vectors, 144 output values bit-exact" in r.stdout, r.stdout[-2000:]
