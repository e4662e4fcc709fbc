"""dcsr_gather, dCSR's gather-offset variant (docs/formats-dcsr-gather.md): the arrays, the
decoder's refusals, and `auto` taking it only where auto.py's cost model says so.

The round trips over random and adversarial matrices are test_codecs_roundtrip.py's (every
format of the registry), with _checks.check_dcsr_gather holding the entries equal to dCSR's.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dmxgen.codecs import CodecError, Encoded, auto, decode, encode, policy
from dmxgen.codecs.dcsr import slope
from dmxgen.codecs.policy import PolicyError, StoragePolicy, assign, choose


def sparse(shape, zeros: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 128, size=shape).astype(np.int8)
    w[rng.random(shape) < zeros] = 0
    return w


def test_offsets_are_columns_minus_the_group_base():
    """Recompute every stored offset from the matrix: column - P, P from dCSR's minimum chain."""
    w = sparse((7, 300), 0.8, seed=3)
    w[2] = 0  # an empty row
    w[4] = 5  # a dense row
    enc = encode("dcsr_gather", w)
    counts = enc.nnze[0] // 7 + enc.row_offsets.astype(np.int64)
    e, g = 0, 0
    for r in range(7):
        cols = np.flatnonzero(w[r])
        assert counts[r] == cols.size  # no zeros inserted on these rows
        s, p = slope(int(counts[r]), 300), 0
        for k in range(0, int(counts[r]), 16):
            p += (16 * s if k else 0) + int(enc.group_minimums[g])
            lanes = cols[k:k + 16]
            np.testing.assert_array_equal(enc.offsets[e:e + lanes.size], lanes - p)
            e, g = e + lanes.size, g + 1
    assert e == enc.values.size and g == enc.group_minimums.size


def test_bytes_against_dcsr():
    """The variant stores V offset bytes where dCSR stores 17*ceil(G/2) + 2*M: more on 90% sparse
    rows of many groups, fewer on rows of one or two entries."""
    w = sparse((12, 2000), 0.9)
    d, g = encode("dcsr", w), encode("dcsr_gather", w)
    v, groups = d.values.size, d.meta["groups"]
    assert g.nbytes - d.nbytes == v - 17 * ((groups + 1) // 2) - 2 * d.meta["masks"] > 0
    assert g.nbytes < encode("csr", w).nbytes
    lone = np.zeros((8, 40), dtype=np.int8)
    lone[:, 3] = 9
    assert encode("dcsr_gather", lone).nbytes < encode("dcsr", lone).nbytes


def test_decode_refuses_inconsistent_arrays():
    enc = encode("dcsr_gather", sparse((5, 50), 0.7))
    short = dict(enc.arrays, offsets=enc.offsets[:-1])
    with pytest.raises(CodecError, match="^dcsr_gather: .* offsets for .* values"):
        decode(Encoded("dcsr_gather", enc.shape, short, 0))
    fewer = dict(enc.arrays, group_minimums=enc.group_minimums[:-1])
    with pytest.raises(CodecError, match="^dcsr_gather: .*group_minimums for .* groups"):
        decode(Encoded("dcsr_gather", enc.shape, fewer, 0))
    far = dict(enc.arrays, offsets=np.full_like(enc.offsets, 255))
    with pytest.raises(CodecError, match="^dcsr_gather: decoded column .* outside 0..49"):
        decode(Encoded("dcsr_gather", enc.shape, far, 0))


# -- auto's cost model -----------------------------------------------------------------------------

def test_auto_takes_the_variant_for_a_sparse_fully_connected_layer_under_a_byte_budget():
    w = sparse((12, 2000), 0.9)
    assert choose(policy.EXPORT, "fc", "fully_connected", w).fmt == "dcsr"  # the fewest bytes
    d, g = encode("dcsr", w), encode("dcsr_gather", w)
    c = assign(_Graph(fc=w), StoragePolicy(budget_bytes=10**6))["fc"]
    assert c.fmt == "dcsr_gather" and c.nbytes == g.nbytes
    assert c.candidates == {"dense": w.size, "csr": encode("csr", w).nbytes, "dcsr": d.nbytes}
    # one vector: dCSR's decode makes it slower than dense here, the variant faster than both
    assert auto.instructions(g) < auto.layer_instructions(encode("dense", w)) < auto.instructions(d)
    assert c.reason == (f"auto: dcsr_gather, {auto.instructions(g):,.0f} instructions against "
                        f"{auto.instructions(d):,.0f} in dcsr (auto.py's cost model) for {g.nbytes - d.nbytes:,} B "
                        "more, within budget_bytes 1,000,000")
    np.testing.assert_array_equal(c.enc.decode(), w)


def test_auto_keeps_dcsr_where_the_variant_has_no_kernel_or_does_not_pay():
    w = sparse((12, 2000), 0.9)
    conv = choose(policy.EXPORT, "pw", "conv2d", w.reshape(12, 1, 1, 2000))  # many vectors: no variant
    assert conv.fmt == "dcsr" and "dcsr_gather" not in conv.candidates
    hls = choose(replace(policy.HLS, fmt="auto"), "fc", "fully_connected", w)
    assert hls.fmt == "dcsr" and "dcsr_gather" not in hls.candidates
    half = sparse((16, 64), 0.3)  # dense is smallest: the variant is not considered
    assert choose(policy.EXPORT, "fc", "fully_connected", half).fmt == "dense"


def test_the_single_vector_model_has_nothing_to_gain_without_groups():
    empty = np.zeros((4, 64), dtype=np.int8)
    e0 = {f: encode(f, empty) for f in ("dcsr", "dcsr_gather")}
    assert auto.instructions(e0["dcsr_gather"]) == auto.instructions(e0["dcsr"])
    assert auto.layer_instructions(e0["dcsr"], 3) == 3 * auto.instructions(e0["dcsr"])


class _Tensor:
    def __init__(self, data):
        self.data, self.encoded = data, None


class _Op:
    def __init__(self, name, kind):
        self.name, self.kind, self.attrs = name, kind, {}


class _Graph:
    def __init__(self, **weights):
        self.ops = [_Op(n, "fully_connected") for n in weights]
        self._w = {n: _Tensor(w) for n, w in weights.items()}

    def weights(self, op):
        return self._w[op.name]


def test_the_variant_only_within_the_budget():
    w = sparse((12, 2000), 0.9)
    g = _Graph(fc=w)
    d, v = encode("dcsr", w).nbytes, encode("dcsr_gather", w).nbytes
    assert assign(g, StoragePolicy(budget_bytes=v))["fc"].fmt == "dcsr_gather"
    tight = assign(g, StoragePolicy(budget_bytes=v - 1))["fc"]  # the variant's bytes do not fit
    assert (tight.fmt, tight.nbytes) == ("dcsr", d)
    assert tight.reason == "auto: fewest bytes among dense/csr/dcsr"
    with pytest.raises(PolicyError, match="over the budget"):
        assign(g, StoragePolicy(budget_bytes=d - 1))


def test_asking_for_the_variant():
    w = sparse((12, 200), 0.9)
    assert choose(StoragePolicy("dcsr_gather"), "fc", "fully_connected", w).fmt == "dcsr_gather"
    conv = choose(StoragePolicy("dcsr_gather"), "pw", "conv2d", w.reshape(12, 1, 1, 200))
    assert (conv.fmt, conv.reason) == ("dcsr_gather", "requested")  # conv2d has the kernel too
    np.testing.assert_array_equal(conv.enc.decode(), w)
    assert choose(StoragePolicy(overrides={"pw": "dcsr_gather"}), "pw", "conv2d",
                  w.reshape(12, 1, 1, 200)).reason == "requested for this layer"
    dw = choose(StoragePolicy("dcsr_gather"), "dw", "depthwise_conv2d", w.reshape(1, 12, 1, 200)[:, :3, :1, :])
    assert (dw.fmt, dw.reason) == ("dense", "no dcsr_gather kernel for depthwise_conv2d")
    with pytest.raises(PolicyError, match=r"layer 'dw' \(depthwise_conv2d\): no dcsr_gather kernel for "):
        choose(StoragePolicy(overrides={"dw": "dcsr_gather"}), "dw", "depthwise_conv2d",
               w.reshape(1, 12, 1, 200)[:, :3, :1, :])
    with pytest.raises(PolicyError, match="^weight format dcsr_gather: this target has no kernel for dCSR's "
                                          r"gather-offset variant \(the HLS kernels read dense, csr and dcsr\)"):
        replace(policy.HLS, fmt="dcsr_gather")
    with pytest.raises(PolicyError, match="^weight format dcsr_gather for layer 'fc': this target"):
        replace(policy.HLS, overrides={"fc": "dcsr_gather"})
