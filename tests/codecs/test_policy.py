"""The storage policy (codecs/policy.py): the rules for one tensor, the pass over a graph,
per-layer overrides, the byte budget, and encodings kept from `dmxgen compress`."""
from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import pytest

from dmxgen.codecs import encode, policy
from dmxgen.codecs.policy import Choice, PolicyError, StoragePolicy, assign, choose
from dmxgen.codecs.view import as_matrix


def sparse(shape, zeros: float, seed: int = 0, lo: int = 1, hi: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.integers(lo, hi, size=shape).astype(np.int8)
    w[rng.random(shape) < zeros] = 0
    return w


class _Tensor:
    def __init__(self, data, encoded=None):
        self.data, self.encoded = data, encoded


class _Op:
    def __init__(self, name, kind, attrs=None):
        self.name, self.kind, self.attrs = name, kind, attrs or {}


class _Graph:
    """The three things `assign` reads of a Graph: ops, and each op's weight tensor (or None)."""

    def __init__(self, *layers):
        self.ops = [_Op(name, kind, attrs) for name, kind, _, attrs in layers] + [_Op("pool", "avg_pool2d")]
        self._w = {name: _Tensor(w, enc) for name, _, (w, enc), _ in layers}

    def weights(self, op):
        return self._w.get(op.name)


def test_requested_sparse_format_needs_a_kernel_and_enough_zeros():
    p = StoragePolicy("csr", 0.5)
    fc = sparse((16, 64), 0.8)
    c = choose(p, "fc", "fully_connected", fc)
    assert (c.fmt, c.reason) == ("csr", "requested")
    np.testing.assert_array_equal(c.enc.decode(), fc)
    c = choose(p, "fc", "fully_connected", sparse((16, 64), 0.3))
    assert c.fmt == "dense" and c.reason.endswith("zeros is below --min-sparsity 0.5")
    assert c.reason == f"{c.sparsity:.1%} zeros is below --min-sparsity 0.5"
    dw = sparse((1, 3, 3, 16), 0.9)
    c = choose(p, "dw", "depthwise_conv2d", dw)
    assert (c.fmt, c.reason) == ("dense", "no csr kernel for depthwise_conv2d")
    assert c.matrix.shape == (9, 16)
    assert choose(StoragePolicy("dense"), "fc", "fully_connected", fc).reason == "requested"


def test_min_sparsity_is_inclusive():
    w = np.zeros((4, 10), np.int8)
    w[:, :5] = 3  # exactly 50% zeros
    assert choose(StoragePolicy("dcsr", 0.5), "fc", "fully_connected", w).fmt == "dcsr"
    assert choose(StoragePolicy("dcsr", 0.51), "fc", "fully_connected", w).fmt == "dense"


def test_auto_takes_the_fewest_stored_bytes_and_reports_them():
    w = sparse((64, 256), 0.9)
    c = choose(StoragePolicy("auto", 1.0), "pw", "conv2d", w.reshape(64, 1, 1, 256))  # min_sparsity: no part
    sizes = {f: encode(f, w).nbytes for f in ("dense", "csr", "dcsr")}
    assert c.candidates == sizes
    assert c.fmt == min(sizes, key=sizes.get) and c.nbytes == min(sizes.values())
    assert c.reason == "auto: fewest bytes among dense/csr/dcsr"


def test_int4_packing_is_the_policy_of_the_target():
    """A half-pruned INT4 layer: packed dense (C) beats dCSR, int8 dense (HLS) does not."""
    w = sparse((64, 255), 0.5, lo=-7, hi=8)
    c_side = choose(policy.EXPORT, "fc", "fully_connected", w, weight_bits=4)
    hls_side = choose(replace(policy.HLS, fmt="auto"), "fc", "fully_connected", w, weight_bits=4)
    dcsr = encode("dcsr", w).nbytes
    assert 64 * 128 < dcsr < 64 * 255
    assert (c_side.fmt, c_side.nbytes, c_side.weight_bits) == ("dense", 64 * 128, 4)
    assert c_side.reason.endswith("(dense INT4: two weights a byte)")
    assert (hls_side.fmt, hls_side.nbytes) == ("dcsr", dcsr)
    # depthwise kernels do not pack INT4, whatever the op says
    dw = choose(policy.EXPORT, "dw", "depthwise_conv2d", sparse((1, 3, 3, 16), 0.0, lo=-7, hi=8), weight_bits=4)
    assert (dw.fmt, dw.nbytes) == ("dense", 144)


def test_overrides_name_a_layer_format_and_skip_min_sparsity():
    fc, conv = sparse((16, 64), 0.2, 1), sparse((8, 3, 3, 4), 0.9, 2)
    g = _Graph(("fc", "fully_connected", (fc, None), {}), ("conv", "conv2d", (conv, None), {}))
    got = assign(g, StoragePolicy("dcsr", 0.5, overrides={"fc": "csr", "conv": "dense"}))
    assert set(got) == {"fc", "conv"}  # ops without weights get no entry
    assert (got["fc"].fmt, got["fc"].reason) == ("csr", "requested for this layer")
    assert (got["conv"].fmt, got["conv"].reason) == ("dense", "requested for this layer")
    plain = assign(g, StoragePolicy("dcsr", 0.5))
    assert plain["fc"].fmt == "dense" and plain["conv"].fmt == "dcsr"


def test_override_errors_name_the_layer():
    dw = sparse((1, 3, 3, 8), 0.9)
    g = _Graph(("dw", "depthwise_conv2d", (dw, None), {}))
    with pytest.raises(PolicyError, match=r"layer 'dw' \(depthwise_conv2d\): no csr kernel for depthwise_conv2d; "
                                          r"its weights can be dense"):
        assign(g, StoragePolicy(overrides={"dw": "csr"}))
    with pytest.raises(PolicyError, match=r"format override for 'fc1': no layer of that name has weights; "
                                          r"layers with weights: dw"):
        assign(g, StoragePolicy(overrides={"fc1": "dense"}))
    with pytest.raises(PolicyError, match=r"unknown weight format 'rle' for layer 'dw'; choose one of "
                                          r"dense, csr, dcsr, dcsr_gather, auto"):
        StoragePolicy(overrides={"dw": "rle"})


@pytest.mark.parametrize("kw, message", [
    ({"fmt": "coo"}, "unknown weight format 'coo'; choose one of dense, csr, dcsr, dcsr_gather, auto"),
    ({"min_sparsity": 1.5}, "min_sparsity 1.5 must be between 0 and 1"),
    ({"min_sparsity": True}, "min_sparsity True must be between 0 and 1"),
    ({"budget_bytes": -1}, "budget_bytes -1 must be a byte count >= 0"),
])
def test_bad_policies_are_refused(kw, message):
    with pytest.raises(PolicyError, match=f"^{message}$"):
        StoragePolicy(**kw)


def test_budget_refuses_weights_over_it():
    w = sparse((16, 64), 0.9)
    g = _Graph(("fc", "fully_connected", (w, None), {}))
    need = assign(g, StoragePolicy("dense"))["fc"].nbytes
    assert need == 16 * 64
    assert assign(g, StoragePolicy("dense", budget_bytes=need))["fc"].fmt == "dense"
    with pytest.raises(PolicyError, match="the weights take 1,024 B in the chosen formats, over the budget of "
                                          "1,023 B"):
        assign(g, StoragePolicy("dense", budget_bytes=need - 1))
    small = assign(g, StoragePolicy("auto", budget_bytes=need - 1))["fc"]  # auto fits
    assert small.nbytes < need


def test_weight_bits_come_from_the_op():
    w = sparse((64, 255), 0.5, lo=-7, hi=8)
    g = _Graph(("a", "fully_connected", (w, None), {"weight_bits": 4}), ("b", "fully_connected", (w, None), {}))
    got = assign(g, policy.EXPORT)
    assert (got["a"].fmt, got["a"].nbytes) == ("dense", 64 * 128)
    assert got["b"].fmt == "dcsr"  # without a byte budget auto stores the fewest bytes (no gather variant)


# -- encodings stored in the model file by `dmxgen compress` ----------------------------------------

def _stored_case():
    """A matrix auto would store as csr, given as if a file stored it dcsr."""
    w = np.zeros((16, 4096), np.int8)
    w[:, 7] = 1  # one nonzero per wide row: dCSR needs padding, CSR wins
    assert choose(policy.EXPORT, "fc", "fully_connected", w).fmt == "csr"
    return w, encode("dcsr", w)


def test_auto_keeps_the_stored_encoding():
    w, stored = _stored_case()
    c = choose(policy.EXPORT, "fc", "fully_connected", w, stored=stored)
    assert c.fmt == "dcsr" and c.enc is stored and c.candidates == {}
    assert c.reason == "kept: the model file stores these weights as dcsr (dmxgen compress)"


def test_an_explicit_format_wins_over_the_stored_one():
    w, stored = _stored_case()
    assert choose(StoragePolicy("dense"), "fc", "fully_connected", w, stored=stored).fmt == "dense"
    assert choose(StoragePolicy("csr", 0.0), "fc", "fully_connected", w, stored=stored).fmt == "csr"
    g = _Graph(("fc", "fully_connected", (w, stored), {}))
    assert assign(g, StoragePolicy(overrides={"fc": "auto"}))["fc"].fmt == "csr"  # re-decided, as asked


def test_a_stored_format_without_kernel_is_re_decided():
    w, _ = _stored_case()
    c = choose(policy.EXPORT, "fc", "fully_connected", w, stored=encode("rle", w))
    assert c.fmt == "csr"
    assert c.reason == ("auto: fewest bytes among dense/csr/dcsr "
                        "(the rle stored in the model file has no fully_connected kernel)")


def test_a_stored_encoding_that_disagrees_with_the_weights_is_refused():
    w, _ = _stored_case()
    other = w.copy()
    other[3, 9] = 5
    with pytest.raises(PolicyError, match=r"layer 'fc' \(fully_connected\): the dcsr weights stored in the model "
                                          r"file differ from its dense weights"):
        choose(policy.EXPORT, "fc", "fully_connected", w, stored=encode("dcsr", other))


# -- the documented defaults of each entry point ------------------------------------------------

def test_each_entry_point_keeps_its_default():
    from dmxgen.backends.hls import write_hls
    from dmxgen.commands import compress, export
    from dmxgen.frontends.tflite_packed import pack

    assert (policy.EXPORT.fmt, policy.EXPORT.min_sparsity, policy.EXPORT.pack_int4) == ("auto", 0.5, True)
    assert (policy.HLS.fmt, policy.HLS.min_sparsity, policy.HLS.pack_int4) == ("dense", 0.0, False)
    assert (policy.COMPRESS.fmt, policy.COMPRESS.min_sparsity) == ("dcsr", 0.7)
    defaults = {p.name: p.default for p in export.command.params}
    assert (defaults["fmt"], defaults["min_sparsity"]) == ("auto", 0.5)
    assert tuple(next(p for p in export.command.params if p.name == "fmt").type.choices) == policy.FORMATS
    defaults = {p.name: p.default for p in compress.command.params}
    assert (defaults["fmt"], defaults["min_sparsity"]) == ("dcsr", 0.7)
    hls = inspect.signature(write_hls).parameters
    assert (hls["weight_format"].default, hls["min_sparsity"].default) == ("dense", 0.0)
    assert inspect.signature(pack).parameters["min_sparsity"].default == 0.7
    # what counts or prints the export's bytes takes the export's defaults and formats
    from dmxgen import targets
    from dmxgen.commands import shrink
    from dmxgen.compress import sizing

    shrink_params = {p.name: p for p in shrink.command.params}
    assert tuple(shrink_params["storage"].type.choices) == policy.FORMATS
    assert (shrink_params["storage"].default, shrink_params["min_sparsity"].default) == ("auto", 0.5)
    for fn, fmt in ((targets.export, "fmt"), (sizing.graph_bytes, "storage"), (sizing.model_bytes, "storage")):
        params = inspect.signature(fn).parameters
        assert (params[fmt].default, params["min_sparsity"].default) == ("auto", 0.5), fn.__name__


def test_choice_nbytes_is_what_the_arrays_hold():
    w = sparse((8, 3, 3, 4), 0.6)
    m = as_matrix("conv2d", w)
    for fmt in ("dense", "csr", "dcsr"):
        c = choose(StoragePolicy(fmt, 0.0), "conv", "conv2d", w)
        assert isinstance(c, Choice) and c.nbytes == encode(fmt, m).nbytes
