"""The Helium (MVE) kernels on the emulated Cortex-M55 give, to the bit, what the reference and
the scalar kernels give.

Host builds never compile the MVE code, so each case is exported, built twice for the M55
(MVE, and -DDMX_NO_MVE for the scalar kernels) and run on QEMU; both must PASS against
expected.h (the numpy reference's output), print the same outputs, and the MVE build must
run fewer instructions (so the MVE path was really taken). The cases hit the edges of the
vector code: row counts not multiple of 4, columns not multiple of 16 (predicated tails),
channel counts not multiple of 4 or 16, padding and strides, both FC roundings, zero points
at -128 and 127, dCSR rows that are empty, full, need extension masks or inserted zeros,
pixel counts not multiple of the 4-pixel dCSR block, and contiguous and broadcast adds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _fw_harness import firmware_marks

from dmxgen import firmware
from dmxgen.targets import export
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder
from tests.backends.conftest import save
from tests.backends.test_c_ops import _binary, _out_hw, conv_model, edge_rows_model, fc_model

pytestmark = firmware_marks


def sample_file(tmp_path: Path, shape, mode: str) -> tuple[str, ...]:
    """An input for input.h: random over the whole int8 range, or alternating -128/127."""
    if mode == "random":
        return ()
    n = int(np.prod(shape))
    x = np.where(np.arange(n) % 3 == 0, -128, 127) if mode == "extremes" else np.full(n, -128)
    p = tmp_path / f"{mode}.npy"
    np.save(p, x.astype(np.int8).reshape(1, *shape))
    return (str(p),)


def mve_vs_scalar(model: Path, out: Path, fmt: str = "dense", semantics: str = "tflite", input_files=(),
                  kernel: str | None = None) -> tuple[int, int]:
    """Export, run the MVE and the scalar build on QEMU; both bit-exact and equal. Returns the counts."""
    manifest = export(load_tflite(model, semantics=semantics), out, source=model, fmt=fmt, semantics=semantics,
                      min_sparsity=0.0, input_files=tuple(input_files), n_vectors=1)
    if kernel:
        assert kernel in [layer["kernel"] for layer in manifest["layers"]]
    mve = firmware.run(out, build_dir=out / "build-mve")
    scalar = firmware.run(out, build_dir=out / "build-scalar", extra_cflags="-DDMX_NO_MVE")
    assert mve.passed, mve.log[-1500:]
    assert scalar.passed, scalar.log[-1500:]
    assert mve.outputs == scalar.outputs and len(mve.outputs) == manifest["output"]["size"]
    assert mve.total_instructions < scalar.total_instructions, (mve.total_instructions, scalar.total_instructions)
    return mve.total_instructions, scalar.total_instructions


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])  # single and double rounding
@pytest.mark.parametrize("cin,cout,in_zp,mode", [(41, 13, -128, "extremes"), (64, 16, 127, "random"),
                                                 (7, 5, 3, "low"), (300, 9, 0, "random")])
def test_fully_connected_dense(tmp_path, semantics, cin, cout, in_zp, mode):
    model = fc_model(tmp_path, "fc", batches=2, cin=cin, cout=cout, in_zp=in_zp)
    mve_vs_scalar(model, tmp_path / "out", "dense", semantics, sample_file(tmp_path, (2, cin), mode),
                  kernel="dmx_fully_connected_dense_s8")


@pytest.mark.parametrize("fmt", ["dense", "dcsr", "dcsr_gather"])
@pytest.mark.parametrize("in_shape,cout,k,stride,padding,per_channel", [
    ((1, 5, 5, 24), 10, (1, 1), (1, 1), "VALID", True),   # direct 1x1, 25 pixels (6 blocks of 4 + 1)
    ((1, 9, 8, 20), 9, (1, 1), (1, 1), "VALID", True),    # 72 pixels: dCSR passes of 64 + 8
    ((1, 6, 6, 33), 7, (1, 1), (2, 2), "VALID", False),   # strided direct 1x1, per-tensor
    ((1, 9, 7, 5), 6, (3, 3), (2, 2), "SAME", True),      # im2col with padding
    ((1, 7, 8, 3), 17, (3, 2), (1, 1), "VALID", True),    # odd kernel, 17 output channels
])
def test_conv2d(tmp_path, fmt, in_shape, cout, k, stride, padding, per_channel):
    model = conv_model(tmp_path, "conv", in_shape=in_shape, cout=cout, k=k, stride=stride, padding=padding,
                       per_channel=per_channel, sparsity=0.0 if fmt == "dense" else 0.8, in_zp=-7)
    mve_vs_scalar(model, tmp_path / "out", fmt, input_files=sample_file(tmp_path, in_shape, "extremes"),
                  kernel=f"dmx_conv2d_{fmt}_s8")


@pytest.mark.parametrize("cin,stride,padding,dilation,mult,in_zp", [
    (19, (1, 1), "SAME", (1, 1), 1, -128),  # 16 + 3 channels, every border
    (8, (2, 2), "SAME", (1, 1), 1, 127),    # blocks of 4
    (36, (1, 1), "VALID", (2, 2), 1, 0),    # 16 + 16 + 4, dilation
    (20, (2, 1), "SAME", (2, 2), 1, 5),     # borders with dilation and an uneven stride
    (6, (1, 1), "SAME", (1, 1), 2, -3),     # depth multiplier 2: the scalar fallback
])
def test_depthwise(tmp_path, cin, stride, padding, dilation, mult, in_zp):
    model = conv_model(tmp_path, "dw", in_shape=(1, 8, 7, cin), k=(3, 3), stride=stride, padding=padding,
                       dilation=dilation, depthwise=True, mult=mult, in_zp=in_zp)
    if mult == 1:
        mve_vs_scalar(model, tmp_path / "out", kernel="dmx_depthwise_conv2d_s8")
    else:  # same code on both builds: equal outputs, both bit-exact
        out = tmp_path / "out"
        export(load_tflite(model), out, source=model, fmt="dense", n_vectors=1)
        runs = [firmware.run(out, build_dir=out / b, extra_cflags=f) for b, f in (("m", ""), ("s", "-DDMX_NO_MVE"))]
        assert all(r.passed for r in runs) and runs[0].outputs == runs[1].outputs


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
@pytest.mark.parametrize("mode", ["extremes", "random"])
def test_dcsr_fully_connected_edge_rows(tmp_path, semantics, mode):
    mve_vs_scalar(edge_rows_model(tmp_path), tmp_path / "out", "dcsr", semantics,
                  sample_file(tmp_path, (1, 300), mode), kernel="dmx_fully_connected_dcsr_s8")


@pytest.mark.parametrize("cin,cout,sparsity,in_zp", [(600, 20, 0.9, -128), (256, 33, 0.95, 127), (50, 4, 0.5, 0)])
def test_dcsr_fully_connected_random(tmp_path, cin, cout, sparsity, in_zp):
    model = fc_model(tmp_path, "fc", cin=cin, cout=cout, sparsity=sparsity, in_zp=in_zp, seed=cin)
    mve_vs_scalar(model, tmp_path / "out", "dcsr", kernel="dmx_fully_connected_dcsr_s8")


@pytest.mark.parametrize("b_shape", [[1, 4, 5, 6], [6], [1, 4, 5, 1], [1]])
def test_add(tmp_path, b_shape):
    mve_vs_scalar(_binary(tmp_path, "ADD", b_shape, act="RELU6"), tmp_path / "out",
                  input_files=sample_file(tmp_path, (1, 4, 5, 6), "extremes"), kernel="dmx_add_s8")


@pytest.mark.parametrize("c,act,padding,mode", [(5, "NONE", "SAME", "extremes"), (16, "RELU", "VALID", "low"),
                                                (7, "NONE", "SAME", "random")])
def test_avg_pool(tmp_path, c, act, padding, mode):
    m = ModelBuilder()
    x = m.tensor("x", [1, 9, 7, c], scale=0.05, zero_point=-3)
    oh, ow = _out_hw(9, 3, 2, 1, padding), _out_hw(7, 3, 2, 1, padding)
    y = m.tensor("y", [1, oh, ow, c], scale=0.05, zero_point=-3)
    m.op("AVERAGE_POOL_2D", [x], [y], padding=padding, strideH=2, strideW=2, filterHeight=3, filterWidth=3,
         fusedActivationFunction=act)
    mve_vs_scalar(save(tmp_path, "pool", m, [x], [y]), tmp_path / "out",
                  input_files=sample_file(tmp_path, (1, 9, 7, c), mode), kernel="dmx_avg_pool2d_s8")


@pytest.mark.parametrize("cin,cout", [(75, 13), (64, 4), (31, 5)])
def test_int4_dense_layers(tmp_path, cin, cout):
    """INT4 (packed) weights: VLD2 + nibble unpacking on 32-column chunks, scalar tails."""
    graph = load_tflite(fc_model(tmp_path, "fc", batches=2, cin=cin, cout=cout, in_zp=-128))
    for op in graph.ops:
        graph.weights(op).data = np.clip(graph.weights(op).data, -8, 7).astype(np.int8)
        op.attrs["weight_bits"] = 4
    out = tmp_path / "out"
    manifest = export(graph, out, fmt="dense", n_vectors=1, input_files=sample_file(tmp_path, (2, cin), "extremes"))
    assert manifest["layers"][0]["weight_bytes"] == cout * ((cin + 1) // 2)
    mve = firmware.run(out, build_dir=out / "build-mve")
    scalar = firmware.run(out, build_dir=out / "build-scalar", extra_cflags="-DDMX_NO_MVE")
    assert mve.passed and scalar.passed and mve.outputs == scalar.outputs
    if cin >= 32:
        assert mve.total_instructions < scalar.total_instructions
