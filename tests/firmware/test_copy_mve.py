"""The Helium copy kernel (templates/c/kernels/copy_mve.c.j2: TRANSPOSE, CONCATENATION,
STRIDED_SLICE, SLICE, SPLIT and PAD are all its strided walk) on the emulated Cortex-M55 gives, to
the bit, what the reference and the scalar kernel (-DDMX_NO_MVE) give, in fewer instructions.

One zoo per dtype (int8, int16): every transpose of rank 2 to 4, inner strided rows of 1, 15, 16
and 17 elements (the 8-lane gather's tail), strides too long for 16-bit offsets (the 4-lane path),
short rows along a long contiguous dim (the swapped inner loops),
concatenation on every axis and with inner runs of 1, 15, 16 and 17 elements (the 16-byte loads'
predicated tail), test_strided_slice.py's, test_split.py's and test_pad.py's cases (negative
steps: the element path; pad: the broadcast fill, also of float32), reshapes of 1 to 40 elements from an input into
an output (the contiguous dmx_copy), and the two layers of the README's table: a
PyTorch-converted model's NCHW -> NHWC TRANSPOSE of 1x32x24x24 and a channel CONCATENATION.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from _fw_harness import firmware_marks, mve_and_scalar

from dmxgen.testing.tflite_builder import ModelBuilder
from tests.ops import test_pad, test_split, test_strided_slice
from tests.ops._harness import Case
from tests.ops._targets import _export, build_zoo
from tests.ops.test_concat import concat_model
from tests.ops.test_transpose import transpose_model

pytestmark = firmware_marks  # two firmware builds per test, about 10 s

SHAPES = {2: (3, 5), 3: (2, 3, 5), 4: (2, 3, 4, 5)}
TRANSPOSES = {
    **{f"t{''.join(map(str, p))}": (SHAPES[len(p)], p) for rank in (2, 3, 4) for p in itertools.permutations(range(rank))},
    **{f"t_inner{n}": ((n, 9), (1, 0)) for n in (1, 15, 16, 17)},  # rows of n at source stride 9
    "t_long_stride": ((9, 9371), (1, 0)),  # 7 * 9371 > 65535: 32-bit offsets, 4 lanes (and a tail of 1)
    "t_short_rows": ((5, 300), (1, 0)),  # rows of 5 along a contiguous 300: the inner loops swap
    "nchw_to_nhwc": ((1, 32, 24, 24), (0, 2, 3, 1)),  # README table
}
CONCATS = {
    **{f"c_axis{a}": ([tuple(3 + k if d == a else (2, 3, 5, 7)[d] for d in range(4)) for k in range(2)], a)
       for a in range(4)},
    "c_axis_neg2": ([(2, 3, 5), (2, 1, 5), (2, 4, 5)], -2),
    "c_inner_runs": ([(2, 3, n) for n in (1, 15, 16, 17)], -1),
    "channels_1x24x24": ([(1, 24, 24, 16), (1, 24, 24, 16)], 3),  # README table
}
MEASURED = ("nchw_to_nhwc", "channels_1x24x24")
RESHAPES = (1, 15, 16, 17, 40)  # an input reshaped into an output: dmx_copy of n elements


def reshape_model(n: int):
    m = ModelBuilder()
    x = m.tensor("x", [1, n], "int8", scale=0.05, zero_point=-7)
    s = m.tensor("s", [2], "int32", data=[n, 1])
    y = m.tensor("y", [n, 1], "int8", scale=0.05, zero_point=-7)
    m.op("RESHAPE", [x, s], [y], newShape=[n, 1])
    return m, x, y


def one_set(c: Case, seed: int) -> Case:
    return dataclasses.replace(c, n=1, seed=seed, extremes=False)


def cases(int16: bool) -> dict[str, Case]:
    out = {}
    for name, (shape, perm) in TRANSPOSES.items():
        m, x, y = transpose_model(shape, perm)
        out[name] = Case(m.to_int16() if int16 else m, [x], [y])
    for name, (shapes, axis) in CONCATS.items():
        m, xs, y = concat_model(shapes, axis)
        out[name] = Case(m.to_int16() if int16 else m, xs, [y])
    for n in RESHAPES:
        m, x, y = reshape_model(n)
        out[f"reshape_{n}"] = Case(m.to_int16() if int16 else m, [x], [y])
    for mod in (test_strided_slice, test_split):
        names = mod.INT16 if int16 and hasattr(mod, "INT16") else list(getattr(mod, "SPLITS", None) or mod.CASES)
        out |= {f"{mod.__name__.split('.')[-1][5:]}_{n}": (mod.case16 if int16 else mod.case)(n) for n in names}
    out |= {f"pad_{n}": test_pad.case16(n) if int16 else test_pad.case(n, "int8") for n in test_pad.CASES}
    return {name: one_set(c, k) for k, (name, c) in enumerate(out.items())}


def run_both(tmp_path: Path, chosen: dict[str, Case]) -> tuple[dict, dict[str, tuple[int, int]]]:
    """Both builds PASS and print the reference's outputs; the manifest, and per layer (MVE, scalar)
    instructions."""
    zoo = build_zoo(tmp_path, chosen, "m55")
    assert len(zoo.inputs) == 1
    out, manifest = _export(zoo, tmp_path, "m55")
    want = np.concatenate([np.asarray(v).reshape(-1) for v in zoo.outputs[0]])
    return manifest, mve_and_scalar(out, want)


def mve_vs_scalar(tmp_path: Path, int16: bool) -> dict[str, tuple[int, int]]:
    """run_both on the dtype's zoo; per layer of MEASURED: (MVE, scalar) instructions, MVE under a third."""
    manifest, table = run_both(tmp_path, cases(int16))
    assert sum(layer["kernel"] == "dmx_copy" for layer in manifest["layers"]) == len(RESHAPES)
    measured = {name: v for name, v in table.items() if name.startswith(tuple(f"{m}_" for m in MEASURED))}
    assert len(measured) == len(MEASURED), sorted(table)
    for name, (mve, scalar) in measured.items():
        print(f"{'int16' if int16 else 'int8'} {name}: MVE {mve}, scalar {scalar}")
        assert mve * 3 < scalar, (name, mve, scalar)
    assert sum(v[0] for v in table.values()) < sum(v[1] for v in table.values())
    return measured


@pytest.mark.parametrize("int16", [False, True], ids=["int8", "int16"])
def test_copies_mve_vs_scalar(tmp_path, int16):
    mve_vs_scalar(tmp_path, int16)


def test_float_pad_mve_vs_scalar(tmp_path):
    """A float32 PAD (at the I/O): the 4-byte fill and rows of the copy kernel."""
    pads = {f"f32_{n}": one_set(test_pad.case(n, "float32"), k) for k, n in enumerate(test_pad.CASES)}
    manifest, table = run_both(tmp_path, pads)
    assert {layer["kernel"] for layer in manifest["layers"]} == {"dmx_pad_f32"}
    assert sum(v[0] for v in table.values()) < sum(v[1] for v in table.values())
