"""Weight views per op, automatic format choice, and the --formats report."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.codecs import CodecError, auto, encode
from dmxgen.codecs.report import format_table, render_table, selected, totals
from dmxgen.codecs.view import SPARSE_KERNELS, as_matrix, from_matrix, matrix_shape


def sparse(shape, zeros: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 128, size=shape).astype(np.int8)
    w[rng.random(shape) < zeros] = 0
    return w


def test_views_follow_memory_order() -> None:
    conv = np.arange(8 * 3 * 3 * 4).reshape(8, 3, 3, 4).astype(np.int8)
    m = as_matrix("conv2d", conv)
    assert m.shape == (8, 36)
    o, ky, kx, ci = 5, 2, 1, 3
    assert m[o, (ky * 3 + kx) * 4 + ci] == conv[o, ky, kx, ci]
    assert as_matrix("conv2d", conv[:, :1, :1, :]).shape == (8, 4)  # 1x1 conv is (out, in)
    dw = np.arange(9 * 16).reshape(1, 3, 3, 16).astype(np.int8)
    m = as_matrix("depthwise_conv2d", dw)
    assert m.shape == (9, 16) and m[2 * 3 + 1, 7] == dw[0, 2, 1, 7]
    fc = np.ones((10, 20), dtype=np.int8)
    assert as_matrix("fully_connected", fc).shape == as_matrix("FULLY_CONNECTED", fc).shape == (10, 20)
    for kind, w in [("conv2d", conv), ("depthwise_conv2d", dw), ("fully_connected", fc)]:
        np.testing.assert_array_equal(from_matrix(kind, as_matrix(kind, w), w.shape), w)


@pytest.mark.parametrize("kind, shape", [("fully_connected", (2, 3, 4)), ("conv2d", (8, 4)),
                                         ("depthwise_conv2d", (2, 3, 3, 8)), ("softmax", (2, 2))])
def test_view_errors(kind: str, shape) -> None:
    with pytest.raises(CodecError):
        matrix_shape(kind, shape)


def test_from_matrix_checks_shape() -> None:
    with pytest.raises(CodecError, match="not the view"):
        from_matrix("conv2d", np.zeros((8, 35), dtype=np.int8), (8, 3, 3, 4))


def test_choose_smallest_with_a_kernel() -> None:
    assert auto.choose("fully_connected", sparse((64, 64), 0.0)).format == "dense"
    enc = auto.choose("fully_connected", sparse((64, 256), 0.9))
    assert enc.format == "dcsr" and enc.nbytes == min(auto.sizes(sparse((64, 256), 0.9))[f]
                                                      for f in ("dense", "csr", "dcsr"))
    one = np.zeros((16, 4096), dtype=np.int8)
    one[:, 7] = 1  # one nonzero per wide row: dCSR needs padding, CSR wins
    assert auto.choose("conv2d", one).format == "csr"
    assert auto.choose("fully_connected", one, allowed=["dense", "dcsr"]).format == "dcsr"
    assert auto.choose("depthwise_conv2d", np.zeros((9, 64), dtype=np.int8)).format == "dense"
    assert auto.choose("conv2d", sparse((64, 256), 0.9), allowed=("dense",)).format == "dense"


def test_choose_ties_go_to_dense() -> None:
    assert auto.pick("conv2d", {"dense": 10, "csr": 10, "dcsr": 10}) == "dense"
    assert auto.pick("conv2d", {"dense": 10, "csr": 9, "dcsr": 9}) == "csr"


def test_choose_bad_allowed() -> None:
    w = sparse((4, 4), 0.5)
    with pytest.raises(CodecError, match="unknown"):
        auto.choose("conv2d", w, allowed=["coo"])
    with pytest.raises(CodecError, match="has a kernel"):
        auto.choose("depthwise_conv2d", w, allowed=["csr"])


def test_sizes_all_formats() -> None:
    w = sparse((32, 100), 0.8)
    assert auto.sizes(w) == {f: encode(f, w).nbytes for f in ("dense", "csr", "dcsr", "rle", "dcsr_gather")}
    assert set(SPARSE_KERNELS) == {"fully_connected", "conv2d", "depthwise_conv2d", "lstm", "gru"}
    assert SPARSE_KERNELS["lstm"] == SPARSE_KERNELS["gru"] == ("dense",)  # each gate matrix read dense


def test_selected_rule() -> None:
    fc = np.zeros((2, 5), dtype=np.int8)
    fc[0, :3] = 1  # exactly 70% zeros
    assert selected("FULLY_CONNECTED", fc)
    fc[0, 3] = 1  # 60%
    assert not selected("fully_connected", fc)
    assert selected("CONV_2D", sparse((8, 1, 1, 16), 0.95))
    assert not selected("conv2d", sparse((8, 3, 3, 16), 0.95))  # only 1x1 kernels
    assert not selected("depthwise_conv2d", sparse((1, 3, 3, 16), 0.95))


def test_report_rows_totals_and_render() -> None:
    layers = [("fc1", "fully_connected", sparse((64, 256), 0.9, 1)),
              ("conv", "conv2d", sparse((16, 3, 3, 8), 0.2, 2)),
              ("pw", "conv2d", sparse((32, 1, 1, 64), 0.8, 3)),
              ("dw", "depthwise_conv2d", sparse((1, 3, 3, 32), 0.9, 4))]
    rep = format_table(layers)
    assert [r["layer"] for r in rep.rows] == ["fc1", "conv", "pw", "dw"]
    r0 = rep.rows[0]
    assert r0["shape"] == (64, 256) and r0["chosen"] == "dcsr" and r0["selected"]
    assert {k: r0[k] for k in ("dense", "csr", "dcsr", "rle", "dcsr_gather")} == auto.sizes(layers[0][2])
    assert rep.rows[1]["shape"] == (16, 72) and not rep.rows[1]["selected"]
    assert rep.rows[3]["chosen"] == "dense" and rep.rows[3]["shape"] == (9, 32)
    t = rep.totals
    assert t["tensors"] == 4 and t["dense"] == sum(w.size for _, _, w in layers)
    assert t["chosen_bytes"] == sum(r["chosen_bytes"] for r in rep.rows)
    assert t["ratio"] == pytest.approx(t["dense"] / t["chosen_bytes"])
    s = rep.selected_totals
    assert s["tensors"] == 2 and s["dense"] == 64 * 256 + 32 * 64
    assert s == totals(rep.rows, only_selected=True)
    text = render_table(rep)
    lines = text.splitlines()
    assert all(name in text for name in ("fc1", "conv", "pw", "dw", "total", "selected: 2 tensors"))
    table = lines[:lines.index("")]
    assert len({len(line) for line in table}) == 1  # every column padded to its width


def test_report_empty() -> None:
    rep = format_table([])
    assert rep.totals["tensors"] == 0 and rep.totals["ratio"] == 0.0
    assert "selected: none" in render_table(rep)


def test_choose_counts_dense_int4_two_weights_a_byte() -> None:
    w = np.clip(sparse((64, 255), 0.5), -7, 7).astype(np.int8)
    encs = auto.encodings("fully_connected", w)
    assert auto.stored_sizes(encs) == {f: e.nbytes for f, e in encs.items()}
    int4 = auto.stored_sizes(encs, weight_bits=4)
    assert int4 == {"dense": 64 * 128, "csr": encs["csr"].nbytes, "dcsr": encs["dcsr"].nbytes}
    assert int4["dcsr"] < 64 * 255 and int4["dcsr"] > 64 * 128  # so the bit width decides
    assert auto.choose("fully_connected", w).format == "dcsr"
    assert auto.choose("fully_connected", w, weight_bits=4).format == "dense"
    with pytest.raises(CodecError, match="no storage for 2-bit weights"):
        auto.stored_sizes(encs, weight_bits=2)


def test_encodings_skip_formats_that_cannot_hold_the_matrix() -> None:
    wide = np.zeros((2, 70000), dtype=np.int8)
    wide[:, 5] = 3
    assert set(auto.encodings("fully_connected", wide)) == {"dense", "dcsr"}  # CSR's columns are 16-bit
    with pytest.raises(CodecError, match="do not fit 16-bit column indices"):
        auto.encodings("fully_connected", wide, allowed=["csr"])
