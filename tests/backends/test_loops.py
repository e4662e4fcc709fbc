"""Loop descriptors (dmxgen/backends/loops.py) and the strided-copy kernel that runs them.

Each walk is checked against numpy by a tiny numpy interpreter of the descriptor (written
here from its definition, not from the backends), and each copy walk also by the kernels
themselves: the C dmx_copy_strided (templates/c/kernels/copy.c.j2, gcc -Werror -pedantic
with ASan and UBSan) and the HLS dmx::strided_copy (templates/hls/kernels/dmx_copy.h, g++).
TRANSPOSE and STRIDED_SLICE have no op yet; their descriptors must already be right.
The C parameter structs are declared by the kernel templates; a field the Python leaves
out, adds or mistypes fails the export.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from dmxgen.backends import c_render
from dmxgen.graph import loops
from dmxgen.backends.hls import TEMPLATES as HLS_TEMPLATES
from dmxgen.backends.c_layers import C_RESOLVERS, copy_fields
from dmxgen.backends.c_params import Field, StructMismatch, check_struct, fields
from dmxgen.backends.host import SANITIZE, WARNINGS
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder

from tests.backends.conftest import needs_gcc


def addresses(walk: loops.Walk, operand: int) -> np.ndarray:
    """Element offsets operand `operand` visits, in loop order (the descriptor's definition)."""
    index = np.indices(walk.n).reshape(len(walk.n), -1)
    return walk.offsets[operand] + np.asarray(walk.strides[operand]) @ index


def run_copy(walk: loops.Walk, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    out = dst.reshape(-1).copy()
    out[addresses(walk, 1)] = src.reshape(-1)[addresses(walk, 0)]
    return out


RNG = np.random.default_rng(7)
X = RNG.integers(-128, 128, size=(3, 4, 5, 6)).astype(np.int8)
PERMS = [(0, 1, 2, 3), (3, 2, 1, 0), (0, 2, 3, 1), (1, 0, 3, 2), (0, 1, 3, 2)]
SLICES = [
    (slice(None), slice(1, 4), slice(None), slice(0, 6, 2)),
    (slice(None, None, -1), slice(None), slice(4, 0, -2), slice(None)),
    (slice(1, 2), slice(None, None, 3), slice(2, 5), slice(5, None, -1)),
    (slice(2, 1), slice(None), slice(None), slice(None)),  # empty
]


def transpose_walk(perm):
    return loops.transpose(X.shape, perm)


def slice_walk(sl):
    bounds = [s.indices(d) for s, d in zip(sl, X.shape)]
    return loops.strided_slice(X.shape, *zip(*bounds))


# every copy case: (walk, source, destination before the copy, numpy's answer)
def _copy_cases():
    cases = {}
    for perm in PERMS:
        want = np.transpose(X, perm)
        cases[f"transpose_{''.join(map(str, perm))}"] = (transpose_walk(perm), X, np.zeros(X.size, np.int8), want)
    for perm in PERMS[1:3]:  # the same transposes written as a scatter: the input in order, the output strided
        want = np.transpose(X, perm)
        out_strides = loops.contiguous_strides(want.shape)
        scatter = loops.Walk(X.shape, (loops.contiguous_strides(X.shape),
                                       tuple(out_strides[k] for k in np.argsort(perm))))
        cases[f"scatter_{''.join(map(str, perm))}"] = (scatter, X, np.zeros(X.size, np.int8), want)
    for k, sl in enumerate(SLICES):
        want = X[sl]
        cases[f"slice_{k}"] = (slice_walk(sl), X, np.full(want.size, 99, np.int8), want)
    pads = ((0, 0), (1, 2), (0, 3), (2, 1))
    want = np.pad(X, pads, constant_values=-3)
    filled = np.full(want.shape, -3, np.int8)
    cases["pad"] = (loops.pad(X.shape, want.shape, tuple(a for a, _ in pads)), X, filled, want)
    y = RNG.integers(-128, 128, size=(3, 2, 5, 6)).astype(np.int8)
    both = np.concatenate([X, y], axis=1)
    first, second = loops.concat([X.shape, y.shape], 1)
    cases["concat_0"] = (first, X, np.zeros(both.size, np.int8), np.concatenate([X, np.zeros_like(y)], axis=1))
    cases["concat_1"] = (second, y, run_copy(first, X, np.zeros(both.size, np.int8)), both)
    wide = RNG.integers(-30000, 30000, size=(2, 3, 4)).astype(np.int16)
    cases["transpose_int16"] = (loops.transpose(wide.shape, (2, 0, 1)), wide, np.zeros(wide.size, np.int16),
                                np.transpose(wide, (2, 0, 1)))
    f = RNG.standard_normal((4, 5)).astype(np.float32)
    cases["slice_float32"] = (loops.strided_slice(f.shape, (3, 1), (-1, 5), (-2, 2)), f,
                              np.zeros(f[3::-2, 1:5:2].size, np.float32), f[3::-2, 1:5:2])
    cases["reshape"] = (loops.copy(X.shape), X, np.zeros(X.size, np.int8), X)
    return cases


COPIES = _copy_cases()


@pytest.mark.parametrize("name", list(COPIES))
def test_copy_walks_match_numpy(name):
    walk, src, dst, want = COPIES[name]
    assert np.array_equal(run_copy(walk, src, dst), want.reshape(-1))
    assert np.array_equal(run_copy(walk.collapse(name), src, dst), want.reshape(-1))  # merging changes nothing


def test_collapse_merges_contiguous_dims_and_keeps_the_rest():
    assert loops.copy(X.shape).collapse("t").n == (1, 1, 1, X.size)
    t = transpose_walk((0, 1, 3, 2)).collapse("t")
    assert t.n == (1, 12, 6, 5) and t.strides == ((0, 30, 1, 6), (0, 30, 5, 1))
    pad = COPIES["pad"][0].collapse("t")  # every dim but the first padded: nothing merges
    assert pad.n == X.shape and pad.strides == ((120, 30, 6, 1), (504, 72, 9, 1)) and pad.offsets == (0, 72 + 2)
    rows = loops.pad(X.shape, (3, 7, 5, 6), (0, 1, 0, 0)).collapse("t")  # whole rows of 4 * 5 * 6 elements
    assert rows.n == (1, 1, 3, 120) and rows.strides == ((0, 0, 120, 1), (0, 0, 210, 1)) and rows.offsets == (0, 30)
    with pytest.raises(DmxError, match=r"layer 'x' \(transpose\): needs 5 loop dimensions after merging"):
        loops.transpose((2, 3, 4, 5, 6), (4, 3, 2, 1, 0)).collapse("layer 'x' (transpose)")


def test_broadcast_and_reduction_walks_match_numpy():
    a = RNG.integers(-9, 9, size=(3, 1, 5, 1))
    b = RNG.integers(-9, 9, size=(4, 1, 6))
    out = np.broadcast_shapes(a.shape, b.shape)
    walk = loops.broadcast(out, a.shape, b.shape)
    for w in (walk, walk.collapse("add")):
        got = a.reshape(-1)[addresses(w, 0)] * 100 + b.reshape(-1)[addresses(w, 1)]
        assert np.array_equal(got, (a * 100 + b).reshape(-1))
    for axes in [(1,), (0, 3), (1, 2), (0, 1, 2, 3)]:
        walk = loops.reduction(X.shape, axes)
        for w in (walk, walk.collapse("max")):
            got = np.full(np.max(X, axis=axes).size, -128)
            np.maximum.at(got, addresses(w, 0), X.reshape(-1).astype(int))
            assert np.array_equal(got, np.max(X, axis=axes).reshape(-1)), axes


def test_hls_shapes_are_padded_to_four_dims():
    assert loops.padded_shape((5, 6), "t") == (1, 1, 5, 6)
    with pytest.raises(DmxError, match=r"^HLS backend: layer 'p' \(pad\): tensors of rank 5 are not supported"):
        loops.padded_shape((1, 2, 3, 4, 5), "HLS backend: layer 'p' (pad)")


# -- the C kernel on the same walks ---------------------------------------------------------------
CTYPE = {"int8": "int8_t", "int16": "int16_t", "float32": "float"}


def canvas(dst: np.ndarray) -> np.ndarray:
    """The destination with one more element past its end, which no copy may write."""
    return np.append(dst.reshape(-1), dst.dtype.type(77))


def program(prelude: str, declare, call) -> str:
    """A program that runs every copy case and prints each destination (with canvas's extra element) in hex.

    declare(k, walk, src, dst) declares case k's walk; call(k, ctype) copies src<k> into dst with it."""
    parts, body = [prelude], []
    for k, (walk, src, dst, _) in enumerate(COPIES.values()):
        ct, w, out = CTYPE[src.dtype.name], walk.collapse(f"case {k}"), canvas(dst)
        values = ", ".join(map(repr, src.reshape(-1).tolist()))
        parts.append(declare(k, w, src, out) + f"static const {ct} src{k}[{src.size}] = {{ {values} }};\n")
        body.append(f"    {{\n        static {ct} dst[{out.size}] = {{ {', '.join(map(repr, out.tolist()))} }};\n"
                    f"        {call(k, ct)};\n"
                    f"        for (size_t i = 0; i < sizeof dst; i++) {{\n"
                    f"            printf(\"%02x\", ((const unsigned char *)dst)[i]);\n"
                    f"        }}\n        printf(\"\\n\");\n    }}\n")
    return "\n".join(parts) + "\nint main(void)\n{\n" + "".join(body) + "    return 0;\n}\n"


def c_program() -> str:
    """The walks through the C kernel dmx_copy_strided (templates/c/kernels/copy.c.j2)."""
    struct = c_render.environment().from_string('{% import "macros.j2" as m %}{{ m.struct(fs, "") }}')
    prelude = ("#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n"
               "#define DMX_INLINE static inline /* as kernels/common.c.j2 defines it */\n"
               + c_render.render("kernels/copy.c.j2", fmt=None, part="header"))
    return program(prelude,
                   lambda k, w, src, dst: f"static const dmx_copy_t walk{k} = "
                                          f"{struct.render(fs=copy_fields(w, src.itemsize))};\n",
                   lambda k, ct: f"dmx_copy_strided(&walk{k}, src{k}, dst)")


def cpp_program() -> str:
    """The walks through the HLS kernel dmx::strided_copy<T, W> (templates/hls/kernels/dmx_copy.h)."""
    def declare(k, w, src, dst):
        consts = [f"n{j} = {w.n[j]}, s{j} = {w.strides[0][j]}, d{j} = {w.strides[1][j]}" for j in range(loops.RANK)]
        return (f"struct walk{k} {{\n    static const int {', '.join(consts)};\n"
                f"    static const int src_offset = {w.offsets[0]}, dst_offset = {w.offsets[1]};\n"
                f"    static const int src_size = {src.size}, dst_size = {dst.size};\n}};\n")

    return program('#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include "dmx_copy.h"\n',
                   declare, lambda k, ct: f"dmx::strided_copy<{ct}, walk{k}>(src{k}, dst)")


def build_run_compare(source, text: str, compile_cmd: list[str]) -> None:
    """Build the program, run it, and compare each printed destination with numpy's, byte for byte."""
    source.write_text(text)
    exe = source.with_suffix("")
    build = subprocess.run([*compile_cmd, str(source), "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert len(lines) == len(COPIES)
    for line, (name, (_, _, _, want)) in zip(lines, COPIES.items()):
        assert line == canvas(want).tobytes().hex(), name


@needs_gcc
def test_c_strided_copy_matches_numpy(tmp_path):
    """Transposes, strided slices (negative steps, empty), padding, concatenation, 1-, 2- and 4-byte elements."""
    build_run_compare(tmp_path / "walks.c", c_program(), ["gcc", *WARNINGS, *SANITIZE, "-O1"])


# -- the C parameter structs: declared by the kernel templates, checked against the fields -----------
def _pad_model(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 2, 3, 2], scale=0.05, zero_point=-5)
    p = m.tensor("paddings", [4, 2], "int32", data=[[0, 0], [1, 1], [2, 0], [0, 0]])
    y = m.tensor("y", [1, 4, 5, 2], scale=0.05, zero_point=-5)
    m.op("PAD", [x, p], [y])
    return load_tflite(m.save(tmp_path / "pad.tflite", [x], [y]))


@pytest.mark.parametrize("change, message", [
    (lambda fs: [f for f in fs if f.name != "value"], r"missing value$"),
    (lambda fs: fs + fields(extra=1), r"not declared: extra$"),
    (lambda fs: fs + fs[-1:], r"given twice: value$"),
])
def test_a_field_the_python_forgets_fails_the_export(tmp_path, monkeypatch, change, message):
    entry = C_RESOLVERS.entries["pad"]
    resolve = entry.fn

    def forgetful(self, layer, op, i):
        resolve(self, layer, op, i)
        layer.fields = change(layer.fields)

    monkeypatch.setattr(entry, "fn", forgetful)
    with pytest.raises(StructMismatch, match=r"^layer 'pad_0' \(pad\): struct dmx_pad_t .*; " + message):
        export(_pad_model(tmp_path), tmp_path / "out")
    assert not (tmp_path / "out" / "model.c").exists()


def test_field_values_must_fit_the_declared_members():
    walk = copy_fields(loops.copy((2, 3)).collapse("t"), 1)
    check_struct("dmx_copy_t", walk, {}, "t")
    short = [Field("n", "ints", [1, 1, 6]) if f.name == "n" else f for f in walk]
    with pytest.raises(StructMismatch, match=r"^t: dmx_copy_t.n \(int32_t\[4\]\): given ints \[1, 1, 6\]"):
        check_struct("dmx_copy_t", short, {}, "t")
    big = [Field("elem_bytes", "int", 2**31) if f.name == "elem_bytes" else f for f in walk]
    with pytest.raises(StructMismatch, match=r"elem_bytes \(int32_t\): 2147483648 does not fit"):
        check_struct("dmx_copy_t", big, {}, "t")
    lut = [Field("size", "int", 4), Field("table", "sym", "tab")]
    check_struct("dmx_lut_t", lut, {"tab": "int8_t"}, "t")
    with pytest.raises(StructMismatch, match=r"table \(int8_t \*\): points to int16_t array tab"):
        check_struct("dmx_lut_t", lut, {"tab": "int16_t"}, "t")
    with pytest.raises(StructMismatch, match=r"no kernel template declares struct dmx_conv3d_t"):
        check_struct("dmx_conv3d_t", lut, {}, "t")


@needs_gcc
def test_hls_strided_copy_matches_numpy(tmp_path):
    """The HLS copy, templated on the element type, on the same walks (g++ C++14 as hls/Makefile builds csim)."""
    build_run_compare(tmp_path / "walks.cpp", cpp_program(),
                      ["g++", "-std=c++14", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas", *SANITIZE, "-O1",
                       f"-I{HLS_TEMPLATES / 'kernels'}"])
