"""dCSR's gather-offset variant (dcsr_gather) and CSR on the emulated Cortex-M55: the MVE kernels
against the scalar ones (-DDMX_NO_MVE), both bit-exact against expected.h, over the edge shapes of
a single-vector kernel: K = 1, 15, 16, 17 and 300 columns (a lone partial group, a full group, a
full group plus one lane; CSR's 8-lane blocks and tails), an odd row count, empty rows, full rows,
lone entries at either end (dCSR inserts zeros: groups of explicit zeros), both FC roundings and
two batches; CSR also through convolutions (im2col and direct 1x1). The same exports also run on
the host with sanitizers (the scalar kernels). Also dCSR's many-vector kernel (direct 1x1
convolutions) and the variant's (four pixels a block) on rows of one to 14 groups and pixel counts
not multiple of 4."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _fw_harness import firmware_marks

from dmxgen import codecs, firmware
from dmxgen.frontends.tflite import load_tflite
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder
from tests.backends.conftest import assert_bit_exact, export_verify, save
from tests.backends.test_c_ops import conv_model, edge_rows_model
from tests.firmware.test_firmware_mve import sample_file

pytestmark = firmware_marks


def edge_matrix(k: int, seed: int) -> np.ndarray:
    """7 rows of k columns: empty, full, last column only, first column only, ~50% and ~10%
    random, and a zero-free row of alternating signs."""
    rng = np.random.default_rng(seed)
    w = np.zeros((7, k), dtype=np.int8)
    w[1] = rng.integers(1, 128, k)
    w[2, -1] = -128
    w[3, 0] = 127
    w[4, rng.random(k) < 0.5] = 77
    w[5, rng.random(k) < 0.1] = -9
    w[6] = np.where(np.arange(k) % 2, 100, -100)
    return w


def fc(tmp_path, w: np.ndarray, batches: int = 1, in_zp: int = -5):
    rows, k = w.shape
    m = ModelBuilder()
    x = m.tensor("x", [batches, k], scale=0.05, zero_point=in_zp)
    wt = m.tensor("w", [rows, k], scale=0.01, zero_point=0, data=w)
    b = m.tensor("b", [rows], "int32", scale=0.0005, zero_point=0, data=np.arange(rows) * 97 - 300)
    y = m.tensor("y", [batches, rows], scale=0.05 * 0.01 * np.sqrt(k) * 40, zero_point=3)
    m.op("FULLY_CONNECTED", [x, wt, b], [y])
    return save(tmp_path, f"fc{k}", m, [x], [y])


def mve_and_scalar(tmp_path, model, semantics="tflite", input_files=(), fmt="dcsr_gather",
                   op="fully_connected") -> tuple[int, int]:
    """Export in `fmt`, run MVE and scalar builds on QEMU; both PASS with equal outputs."""
    out = tmp_path / "out"
    manifest = export(load_tflite(model, semantics=semantics), out, source=model, fmt=fmt,
                      semantics=semantics, min_sparsity=0.0, input_files=tuple(input_files), n_vectors=1)
    assert [layer["kernel"] for layer in manifest["layers"]] == [f"dmx_{op}_{fmt}_s8"]
    mve = firmware.run(out, build_dir=out / "build-mve")
    scalar = firmware.run(out, build_dir=out / "build-scalar", extra_cflags="-DDMX_NO_MVE")
    assert mve.passed, mve.log[-1500:]
    assert scalar.passed, scalar.log[-1500:]
    assert mve.outputs == scalar.outputs and len(mve.outputs) == manifest["output"]["size"]
    return mve.total_instructions, scalar.total_instructions


@pytest.mark.parametrize("fmt", ["dcsr_gather", "csr"])
@pytest.mark.parametrize("k", [1, 15, 16, 17, 300])
def test_edge_shapes(tmp_path, fmt, k):
    w = edge_matrix(k, seed=k)
    model = fc(tmp_path, w, batches=2)
    files = sample_file(tmp_path, (2, k), "extremes")
    mve, scalar = mve_and_scalar(tmp_path, model, input_files=files, fmt=fmt)
    if k >= 16:  # full groups: the vector path must be the one that ran
        assert mve < scalar, (mve, scalar)
    _, result = export_verify(model, tmp_path / "host", fmt=fmt, min_sparsity=0.0, input_files=files)
    assert_bit_exact(result)


@pytest.mark.parametrize("fmt", ["dcsr_gather", "csr"])
@pytest.mark.parametrize("semantics", ["tflite", "tflm"])  # single and double rounding
def test_dcsr_edge_rows(tmp_path, semantics, fmt):
    """edge_rows_model: extension masks and inserted zeros in dCSR, i.e. large offsets here."""
    model = edge_rows_model(tmp_path)
    w = load_tflite(model).tensors["w"].data
    assert codecs.encode("dcsr_gather", w).offsets.max() > 200  # offsets past dCSR's nibble
    mve, scalar = mve_and_scalar(tmp_path, model, semantics, sample_file(tmp_path, (1, 300), "random"), fmt)
    assert mve < scalar


@pytest.mark.parametrize("in_shape,cout,k,stride,padding", [
    ((1, 5, 5, 24), 10, (1, 1), (1, 1), "VALID"),   # direct 1x1: one matrix-vector product per pixel
    ((1, 9, 7, 5), 6, (3, 3), (2, 2), "SAME"),      # im2col with padding, K = 45
    ((1, 7, 8, 3), 17, (3, 2), (1, 1), "VALID"),    # odd kernel, 17 output channels, K = 18
])
def test_csr_conv2d(tmp_path, in_shape, cout, k, stride, padding):
    model = conv_model(tmp_path, "conv", in_shape=in_shape, cout=cout, k=k, stride=stride, padding=padding,
                       per_channel=True, sparsity=0.7, in_zp=-7)
    mve, scalar = mve_and_scalar(tmp_path, model, input_files=sample_file(tmp_path, in_shape, "extremes"),
                                 fmt="csr", op="conv2d")
    assert mve < scalar


def test_random_sparse_fewer_instructions_than_dcsr(tmp_path):
    """A 90% sparse 20x600 layer: bit-exact, and the variant's MVE kernel beats dCSR's."""
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (20, 600)).astype(np.int8)
    w[rng.random(w.shape) < 0.9] = 0
    model = fc(tmp_path, w, in_zp=-128)
    mve, _ = mve_and_scalar(tmp_path, model)
    out = tmp_path / "dcsr"
    export(load_tflite(model), out, source=model, fmt="dcsr", min_sparsity=0.0, n_vectors=1)
    dcsr = firmware.run(out, build_dir=out / "build-mve")
    assert dcsr.passed and mve < dcsr.total_instructions, (mve, dcsr.total_instructions)


@pytest.mark.parametrize("fmt", ["dcsr", "dcsr_gather"])
@pytest.mark.parametrize("in_shape,cout,sparsity,per_channel", [
    ((1, 3, 7, 300), 5, 0.3, True),    # ~210 entries a row: 14 groups; 21 pixels (a last block of 1)
    ((1, 2, 9, 260), 3, 0.5, True),    # 18 pixels (a last block of 2); rows of ~130 entries: 8-9 groups
    ((1, 5, 3, 64), 7, 0.75, False),   # 15 pixels (a last block of 3), rows of ~16: one group or a partial one
])
def test_dcsr_conv2d_long_rows(tmp_path, fmt, in_shape, cout, sparsity, per_channel):
    """Direct 1x1 layers through the many-vector kernels: dCSR's (a group decoded once for 64 pixels) and
    the gather variant's (row by row, four pixels a block)."""
    model = conv_model(tmp_path, "conv", in_shape=in_shape, cout=cout, k=(1, 1), stride=(1, 1), padding="VALID",
                       per_channel=per_channel, sparsity=sparsity, in_zp=5)
    files = sample_file(tmp_path, in_shape, "extremes")
    mve, scalar = mve_and_scalar(tmp_path, model, input_files=files, fmt=fmt, op="conv2d")
    assert mve < scalar
    if fmt == "dcsr_gather":  # the scalar kernel on the host too, under the sanitizers
        _, result = export_verify(model, tmp_path / "host", fmt=fmt, min_sparsity=0.0, input_files=files)
        assert_bit_exact(result)


class _PointwisePot(torch.nn.Module):
    """A 1x1 convolution with power-of-two requantization (single rounding, half up)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(40, 9, 1)

    def forward(self, x):
        return self.conv(x)


def test_dcsr_gather_conv2d_single_rounding(tmp_path):
    """The four-pixel 1x1 kernel's single-rounding requantization (a PyTorch POWER_OF_TWO layer)."""
    from dmxgen.api import save as save_pt2
    from tests.ops._torch import calibrated
    from tests.torch.conftest import export_and_verify

    m, x = calibrated(_PointwisePot, (32, 40, 3, 5), {"conv": {"requantization": "POWER_OF_TWO"}})
    out = export_and_verify(save_pt2(m, tmp_path / "pw.pt2", x[:1]), tmp_path / "out", "--format", "dcsr_gather",
                            "--min-sparsity", "0")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(layer["kernel"], layer["format"]) for layer in manifest["layers"] if layer["op"] == "conv2d"] == [
        ("dmx_conv2d_dcsr_gather_s8", "dcsr_gather")]
    runs = [firmware.run(out, build_dir=out / b, extra_cflags=f) for b, f in (("m", ""), ("s", "-DDMX_NO_MVE"))]
    assert all(r.passed for r in runs), runs[0].log[-1500:]
    assert runs[0].outputs == runs[1].outputs and runs[0].total_instructions < runs[1].total_instructions


@pytest.mark.parametrize("k", [1, 15, 16, 17])
def test_dcsr_gather_conv2d_1x1_edge_columns(tmp_path, k):
    """The four-pixel 1x1 kernel at K = 1, 15, 16, 17 (a lone partial group, one short, one full, one full
    plus a lane), 15 pixels (a last block of three), odd output channels, no zeros (every group full)."""
    in_shape = (1, 3, 5, k)
    model = conv_model(tmp_path, "conv", in_shape=in_shape, cout=7, k=(1, 1), stride=(1, 1), padding="VALID",
                       per_channel=True, sparsity=0.0, in_zp=-128, seed=k)
    mve, scalar = mve_and_scalar(tmp_path, model, input_files=sample_file(tmp_path, in_shape, "extremes"),
                                 fmt="dcsr_gather", op="conv2d")
    assert mve < scalar
