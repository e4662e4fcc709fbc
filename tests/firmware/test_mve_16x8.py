"""The Helium 16x8 kernels (templates/c/kernels/s16/matvec_dense_mve.c.j2, s16/add_mve.c.j2) on the
emulated Cortex-M55 give, to the bit, what the reference and the scalar int16 kernels give.

Each test merges its int16 FULLY_CONNECTED / CONV_2D / ADD cases into one graph, exports it with one
chosen input set per case, builds it twice (MVE, and -DDMX_NO_MVE for the scalar kernels) and
runs both on QEMU: both must PASS against expected.h (the numpy reference), print the same
outputs, and the MVE build must run fewer instructions. The cases hit the vector code's edges:
column counts around the 8 lanes (1, 7, 8, 9, 15, 16, 17, 33) and around its 256-column int32
blocks (263, 520), row counts that are not multiples of 4, outputs saturated at the int16 rails,
the largest products (-32768 * -128 in every column) and int64 biases near +-2^40, under both
FULLY_CONNECTED roundings (LiteRT's single, TFLite Micro's reduced). The int16 ADD
(s16/add_mve.c.j2) runs test_add.py's int16 cases and innermost lengths around its four lanes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _fw_harness import firmware_marks

from dmxgen import firmware, reference
from dmxgen.frontends.tflite import load_tflite
from dmxgen.graph import Graph
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder
from dmxgen.testing.zoo import merge
from tests.ops._16x8 import to_16x8
from tests.ops._harness import input_sets, save
from tests.ops.test_add import CASES16 as ADD_CASES16
from tests.ops.test_add import binary16
from tests.ops.test_conv2d import conv_model
from tests.ops.test_fully_connected import fc_model

pytestmark = firmware_marks
I16 = np.iinfo(np.int16)


def mlp_16x8(dims=(256, 128, 64, 10), seed: int = 0) -> tuple[ModelBuilder, int, int]:
    """A 16x8 MLP (FULLY_CONNECTED + RELU, the last without): int16 activations (zero point 0),
    per-channel int8 weights, int64 biases; the scales keep typical outputs near +-8000 LSB."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    s_x = 1 / 4096
    x = t = m.tensor("x", [1, dims[0]], "int16", scale=s_x, zero_point=0)
    for k, (cin, cout) in enumerate(zip(dims, dims[1:])):
        last = k == len(dims) - 2
        s_w = (0.01 * rng.uniform(0.5, 2.0, cout)).astype(np.float32)
        w = m.tensor(f"w{k}", [cout, cin], scale=s_w, zero_point=np.zeros(cout), axis=0,
                     data=rng.integers(-127, 128, (cout, cin)).astype(np.int8))
        typical = np.sqrt(cin) * 18900 * 73 * (1 if k == 0 else 0.5)  # |x| uniform, then half the ReLU's
        b = m.tensor(f"b{k}", [cout], "int64", scale=np.float32(s_x) * s_w, zero_point=np.zeros(cout),
                     data=rng.integers(-int(typical), int(typical), cout).astype(np.int64))
        s_y = float(s_x * 0.01 * typical / 8000)
        y = m.tensor(f"y{k}", [1, cout], "int16", scale=s_y, zero_point=0)
        m.op("FULLY_CONNECTED", [t, w, b], [y], fusedActivationFunction="NONE" if last else "RELU")
        t, s_x = y, s_y
    return m, x, t


def max_product_fc(cin: int) -> tuple[ModelBuilder, int, int]:
    """Every weight -128: with an all -32768 input each column adds 2^22, so past 512 columns the
    sum leaves int32 (the kernel's int32 blocks must not); the scale keeps the output inside int16."""
    m = ModelBuilder()
    x = m.tensor("x", [1, cin], "int16", scale=1 / 4096, zero_point=0)
    s_w = np.array([0.01], np.float32)
    w = m.tensor("w", [3, cin], scale=s_w, zero_point=[0], data=np.full((3, cin), -128, np.int8))
    b = m.tensor("b", [3], "int64", scale=np.float32(1 / 4096) * s_w, zero_point=[0],
                 data=np.array([0, -2**30, -2**31], np.int64))
    y = m.tensor("y", [1, 3], "int16", scale=float(1 / 4096 * 0.01 * cin * 2**22 / 20000), zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, b], [y])
    return m, x, y


def _fc16(seed: int, bias_big: int = 0, **kw):
    m, x, y = fc_model(seed=seed, **kw)
    return to_16x8(m, bias_big=bias_big), x, y


def _conv16(seed: int, **kw):
    m, x, y = conv_model(seed, **kw)
    return to_16x8(m), x, y


# name -> (model, which input set: a seeded random one, or "min" / "max" (every value at the rail))
FC_CASES = {
    **{f"k{k}_rows{r}": (lambda k=k, r=r: _fc16(k, in_shape=(2, k), cout=r), "random")
       for k, r in ((1, 3), (7, 5), (8, 4), (9, 7), (15, 1), (16, 8), (17, 9), (33, 13), (263, 6), (520, 5))},
    "per_channel_k41": (lambda: _fc16(3, in_shape=(3, 41), cout=11, per_channel=True), "random"),
    "saturate_k24": (lambda: _fc16(4, in_shape=(2, 24), cout=7, spread=8.0), "max"),
    "saturate_low_k24": (lambda: _fc16(5, in_shape=(2, 24), cout=6, spread=8.0), "min"),
    "bias_2p40": (lambda: _fc16(6, in_shape=(2, 16), cout=5, per_channel=True, spread=1e-5, bias_big=2**40),
                  "random"),
    "max_product_k520": (lambda: max_product_fc(520), "min"),
    "max_product_k263": (lambda: max_product_fc(263), "min"),
}

# im2col (K = kh * kw * cin) and direct 1x1 layers
CONV_CASES = {
    "im2col_3x3_cin3": (lambda: _conv16(1, h=7, w=6, cin=3, cout=5), "random"),  # K = 27
    "im2col_3x3_cin1": (lambda: _conv16(2, h=6, w=6, cin=1, cout=3, padding="VALID"), "random"),  # K = 9
    "direct_1x1_cin17": (lambda: _conv16(3, h=4, w=5, cin=17, cout=9, k=(1, 1)), "random"),
    "direct_1x1_cin8": (lambda: _conv16(4, h=3, w=3, cin=8, cout=7, k=(1, 1), stride=(2, 2), padding="VALID"),
                        "max"),
    "k5x5_cin13_s2": (lambda: _conv16(5, h=11, w=9, cin=13, cout=6, k=(5, 5), stride=(2, 2)), "random"),  # 325
    "saturate": (lambda: _conv16(6, h=5, w=5, cin=4, cout=4, spread=8.0), "min"),
}


def _add16(shape_a, shape_b, **kw):
    m, ins, y = binary16("ADD", shape_a, shape_b, seed=len(shape_a) + len(shape_b), **kw)
    return m, list(ins), y


S16 = tuple(s / 256 for s in (0.05, 0.05, 0.1))
# test_add.py's int16 cases (general and power-of-two paths, broadcasts, constants, activations), and
# innermost lengths around the four lanes; the saturating ones at the rails
ADD_CASES = {
    **{name: (lambda a=a, b=b, kw=kw: _add16(a, b, **kw), "max" if name == "saturate" else "random")
       for name, (a, b, kw) in ADD_CASES16.items()},
    **{f"len{n}": (lambda n=n: _add16((2, n), (2, n), s=S16), "random") for n in (1, 3, 4, 5, 9)},
    "len7_broadcast_rows": (lambda: _add16((3, 7), (1, 7), s=S16), "random"),
    "len6_broadcast_lanes": (lambda: _add16((2, 3, 6), (2, 3, 1), s=S16), "random"),
    "saturate_low": (lambda: _add16((1, 11), (1, 11), s=tuple(s / 256 for s in (0.1, 0.1, 0.01))), "min"),
}


def build_zoo(tmp_path: Path, cases: dict, semantics: str) -> tuple[Graph, list[np.ndarray]]:
    """The cases' graphs side by side, and one input set for each (its chosen one)."""
    graphs, inputs = {}, []
    for k, (name, (make, which)) in enumerate(cases.items()):
        m, x, y = make()
        xs = x if isinstance(x, list) else [x]
        g = load_tflite(save(m, tmp_path, xs, [y], name=name), semantics=semantics)
        if which == "random":
            inputs += input_sets(g, 1, seed=k, extremes=False)[0]
        else:
            inputs += [np.full(g.tensors[n].shape, I16.min if which == "min" else I16.max, np.int16)
                       for n in g.inputs]
        graphs[name] = g
    return merge(graphs), inputs


def mve_vs_scalar(tmp_path: Path, cases: dict, semantics: str, kernel: str) -> tuple[int, int]:
    """Export the zoo with its one input vector; the MVE and the scalar build both bit-exact with
    the reference and equal; returns their instruction counts."""
    graph, vector = build_zoo(tmp_path, cases, semantics)
    values = reference.run(graph, vector)
    want = np.concatenate([np.asarray(values[n]).reshape(-1) for n in graph.outputs])
    npz = tmp_path / "inputs.npz"
    np.savez(npz, **{name: v[None] for name, v in zip(graph.inputs, vector)})
    out = tmp_path / "out"
    manifest = export(graph, out, targets=("c",), input_files=(str(npz),), n_vectors=0, semantics=semantics)
    assert {layer["kernel"] for layer in manifest["layers"]} == {kernel}
    runs = {}
    for build, flags in {"mve": "", "scalar": "-DDMX_NO_MVE"}.items():
        r = firmware.run(out, build_dir=out / f"build-{build}", extra_cflags=flags)
        assert r.passed, f"M55 {build}: {r.verdict}\n{r.log[-2000:]}"
        got = np.array(r.outputs, dtype=want.dtype)
        assert got.tobytes() == want.tobytes(), f"M55 {build} outputs differ from the reference"
        runs[build] = r.total_instructions
    assert runs["mve"] < runs["scalar"], runs
    return runs["mve"], runs["scalar"]


def test_cases_reach_the_edges(tmp_path):
    """The saturating cases do saturate, the max-product ones sum beyond int32, and no other case's
    output is constant (which would hide a wrong accumulator or lane)."""
    graph, vector = build_zoo(tmp_path, FC_CASES, "tflite")
    values = reference.run(graph, vector)
    out = {name.split("/")[0]: np.asarray(values[name]) for name in graph.outputs}
    assert (out["saturate_k24"] == I16.max).any() and (out["saturate_low_k24"] == I16.min).any()
    for name, v in out.items():
        assert np.unique(v).size > 1 or v.size == 1, name
    assert np.abs(out["bias_2p40"]).max() > 10000  # the 2^40 biases dominate, and do not saturate
    x = dict(zip(graph.inputs, vector))["max_product_k520/x"].astype(np.int64)
    sums = x @ graph.tensors["max_product_k520/w"].data.astype(np.int64).T
    assert sums.min() > 2**31 and 0 < np.abs(out["max_product_k520"]).max() < I16.max
    graph, vector = build_zoo(tmp_path, ADD_CASES, "tflite")
    values = reference.run(graph, vector)
    out = {name.split("/")[0]: np.asarray(values[name]) for name in graph.outputs}
    assert (out["saturate"] == I16.max).all() and (out["saturate_low"] == I16.min).all()
    assert all(np.unique(v).size > 1 for name, v in out.items() if not name.startswith("saturate")), out


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])  # FC rounding: single, reduced
def test_fully_connected_16x8_mve(tmp_path, semantics):
    mve_vs_scalar(tmp_path, FC_CASES, semantics, "dmx_fully_connected_dense_s16")


def test_conv2d_16x8_mve(tmp_path):
    mve_vs_scalar(tmp_path, CONV_CASES, "tflite", "dmx_conv2d_dense_s16")


def test_mlp_16x8_mve(tmp_path):
    """The 256-128-64-10 MLP of the README's Cortex-M55 figures: MVE well under the scalar count."""
    mve, scalar = mve_vs_scalar(tmp_path, {"mlp": (mlp_16x8, "random")}, "tflite", "dmx_fully_connected_dense_s16")
    assert mve * 3 < scalar, (mve, scalar)


def test_add_16x8_mve(tmp_path):
    mve_vs_scalar(tmp_path, ADD_CASES, "tflite", "dmx_add_s16")
