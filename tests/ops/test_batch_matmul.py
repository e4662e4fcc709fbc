"""BATCH_MATMUL: adjoints, batch broadcasting, ranks 2 to 5, zero points at the extremes, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.ops.batch_matmul import MAX_DEPTH, geometry
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets

VALID_ATTRS = [{"adj_x": 0, "adj_y": 1, "lhs_offset": 3, "rhs_offset": -128, "output_offset": 5,
                "output_multiplier": 1 << 30, "output_shift": -7, "act_min": -128, "act_max": 127}]


def matmul_shapes(lhs, rhs, adj_x, adj_y):
    """The output shape TFLite gives, computed independently of dmxgen's geometry (numpy's matmul)."""
    a = np.zeros(lhs)
    b = np.zeros(rhs)
    return np.matmul(np.swapaxes(a, -1, -2) if adj_x else a, np.swapaxes(b, -1, -2) if adj_y else b).shape


def matmul_model(lhs, rhs, adj_x=False, adj_y=False, q=None, out_shape=None, per_channel=False, const_rhs=False):
    """lhs x rhs; q: ((s_lhs, zp_lhs), (s_rhs, zp_rhs), (s_out, zp_out))."""
    (sa, za), (sb, zb), (so, zo) = q or ((0.05, -3), (0.04, 7), (None, -2))
    depth = lhs[-2] if adj_x else lhs[-1]
    if so is None:  # a typical sum of `depth` products near +-40 LSB
        so = float(sa * sb * np.sqrt(depth) * 74 * 74 / 40)
    m = ModelBuilder()
    x = m.tensor("lhs", lhs, "int8", scale=sa, zero_point=za)
    data = np.random.default_rng(1).integers(-128, 128, size=rhs).astype(np.int8) if const_rhs else None
    ys = [sb] * rhs[-1] if per_channel else sb
    y = m.tensor("rhs", rhs, "int8", scale=ys, zero_point=zb, data=data, axis=len(rhs) - 1)
    out = m.tensor("out", out_shape or matmul_shapes(lhs, rhs, adj_x, adj_y), "int8", scale=so, zero_point=zo)
    m.op("BATCH_MATMUL", [x, y], [out], adjX=adj_x, adjY=adj_y)
    return m, [x] if const_rhs else [x, y], out


CASES = {  # first: the M55 sample (every third case) runs it on a random input set
    "adj_y_deep": ((1, 3, 37), (1, 5, 37), {"adj_y": True}),  # MVE's depth path: two 16-wide steps, a tail
    "r2": ((4, 6), (6, 5), {}),
    "r3": ((2, 3, 8), (2, 8, 4), {}),
    "r3_adj_x": ((2, 8, 3), (2, 8, 4), {"adj_x": True}),
    "r3_adj_y": ((2, 3, 8), (2, 4, 8), {"adj_y": True}),  # attention's q @ k^T
    "r3_adj_both": ((2, 8, 3), (2, 4, 8), {"adj_x": True, "adj_y": True}),
    "r4_heads": ((1, 2, 5, 4), (1, 2, 4, 5), {}),
    "broadcast_rhs_batch": ((3, 4, 6), (1, 6, 2), {}),
    "broadcast_lhs_batch": ((1, 4, 6), (3, 6, 2), {}),
    "broadcast_rank": ((2, 3, 4, 6), (6, 5), {}),  # rhs of rank 2 repeats over both batch dims
    "broadcast_both_ways": ((2, 1, 3, 4), (1, 3, 4, 2), {"adj_y": False}),
    "r5": ((2, 1, 2, 3, 4), (1, 2, 1, 4, 3), {}),
    "zp_extremes": ((2, 3, 8), (2, 8, 4), {"q": ((0.02, -128), (0.03, 127), (None, 127))}),
    "zp_extremes_other_way": ((2, 3, 8), (2, 8, 4), {"q": ((0.02, 127), (0.03, 127), (0.42, -128))}),
    "saturate": ((2, 3, 16), (2, 16, 4), {"q": ((0.1, 0), (0.1, 0), (0.01, 0))}),
    "multiplier_above_one": ((1, 2, 2), (1, 2, 3), {"q": ((0.5, 0), (0.5, 0), (0.1, 0))}),
    "long_depth": ((1, 2, 300), (1, 300, 3), {"adj_x": False, "adj_y": False}),
}
TFLM = ["r3", "r3_adj_y", "broadcast_rank", "r4_heads", "zp_extremes"]


SMALL = {"saturate", "multiplier_above_one"}  # random codes saturate these: add sets of small codes


def case(name: str) -> Case:
    lhs, rhs, kw = CASES[name]
    m, ins, out = matmul_model(lhs, rhs, **kw)
    rng = np.random.default_rng(5)
    small = [[rng.integers(-3, 4, size=s).astype(np.int8) for s in (lhs, rhs)] for _ in range(2)]
    extra = small if name in SMALL else []
    return Case(m, ins, [out], n=4, seed=len(name), extra=extra)


@pytest.mark.parametrize("name", list(CASES))
def test_batch_matmul_matches_tflite(tmp_path, name):
    out = check_case(case(name), tmp_path, goldens=("tflite",), min_distinct=3)
    lhs, rhs, kw = CASES[name]
    assert out.shape[1:] == matmul_shapes(lhs, rhs, kw.get("adj_x", False), kw.get("adj_y", False))


@pytest.mark.parametrize("name", TFLM)
def test_batch_matmul_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",), min_distinct=3)


@pytest.mark.parametrize("target", targets("batch_matmul"))
def test_batch_matmul_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=TFLM[:2])


def test_geometry_broadcast_strides_are_zero():
    g = geometry((3, 4, 6), (1, 6, 2), 0, 0)
    assert g.batches == (1, 1, 3) and g.lhs_batch_stride == (0, 0, 24) and g.rhs_batch_stride == (0, 0, 0)
    g = geometry((2, 8, 3), (2, 4, 8), 1, 1)  # lhs [K, M], rhs [N, K]
    assert (g.rows, g.cols, g.depth) == (3, 4, 8)
    assert (g.lhs_row_stride, g.lhs_depth_stride, g.rhs_depth_stride, g.rhs_col_stride) == (1, 3, 1, 8)


@pytest.mark.parametrize("lhs, rhs, kw, message", [
    ((2, 3, 8), (2, 5, 4), {"out_shape": (2, 3, 4)},
     r"lhs \[2, 3, 8\] \(adj_x=0\) sums over 8 values, rhs \[2, 5, 4\] \(adj_y=0\) over 5"),
    ((2, 3, 8), (3, 8, 4), {"out_shape": (2, 3, 4)}, r"batch dims of \[2, 3, 8\] and \[3, 8, 4\] do not broadcast"),
    ((2, 3, 8), (2, 8, 4), {"out_shape": (2, 4, 3)}, r"output shape \[2, 4, 3\] should be \[2, 3, 4\]"),
    ((8,), (8, 4), {"out_shape": (4,)}, r"lhs has rank 1; BATCH_MATMUL takes ranks 2 to 5"),
    ((1, 2, MAX_DEPTH + 1), (1, MAX_DEPTH + 1, 1), {"out_shape": (1, 2, 1)},
     r"sums of 33026 products can overflow the int32 accumulator \(at most 33025\)"),
    ((2, 3, 8), (2, 8, 4), {"per_channel": True}, r"tensor 'rhs' is quantized per channel"),
    ((2, 3, 8), (2, 8, 4), {"const_rhs": True}, r"rhs 'rhs' is a constant"),
])
def test_batch_matmul_refusals_name_the_layer(tmp_path, lhs, rhs, kw, message):
    m, ins, out = matmul_model(lhs, rhs, **kw)
    # the mapping's refusals name the operator, the shape checks the op it made
    where = r"(operator 0 \(BATCH_MATMUL|op 'batch_matmul_0' \(batch_matmul), output 'out'\): "
    with pytest.raises(DmxError, match=where + message):
        load_tflite(save(m, tmp_path, ins, [out]))


def test_batch_matmul_refuses_int16(tmp_path):
    m = ModelBuilder()
    x = m.tensor("lhs", (2, 3), "int16", scale=0.1, zero_point=0)
    y = m.tensor("rhs", (3, 2), "int16", scale=0.1, zero_point=0)
    out = m.tensor("out", (2, 2), "int16", scale=0.1, zero_point=0)
    m.op("BATCH_MATMUL", [x, y], [out])
    with pytest.raises(DmxError, match=r"tensor 'lhs' is int16; only int8 is supported"):
        load_tflite(save(m, tmp_path, [x, y], [out]))


# -- the PyTorch frontend: matmul / bmm / @ of two activations ---------------------------------------
class SingleHead(torch.nn.Module):
    """Self-attention written out: q, k, v Linears, q @ k^T scaled, softmax, @ v."""

    def __init__(self, dim=8):
        super().__init__()
        self.q, self.k, self.v = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.scale = dim ** -0.5

    def forward(self, x):  # [N, T, D]
        scores = self.q(x) @ self.k(x).transpose(-2, -1) * self.scale
        return torch.softmax(scores, dim=-1) @ self.v(x)


class MultiHead(torch.nn.Module):
    """Two heads as rank-4 matmuls ([N, H, T, d]), torch.matmul and F.softmax, then the out projection."""

    def __init__(self, dim=8, heads=2):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.k, self.v = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.out = torch.nn.Linear(dim, dim)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (f(x).view(n, t, self.heads, d // self.heads).transpose(1, 2) for f in (self.q, self.k, self.v))
        att = torch.nn.functional.softmax(torch.matmul(q, k.transpose(2, 3)) * self.scale, dim=-1)
        return self.out(torch.matmul(att, v).transpose(1, 2).reshape(n, t, d))


class Bmm(torch.nn.Module):
    """torch.bmm, and a product of a tensor with itself (one fx node, both operands)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)

    def forward(self, x):  # [N, 4, 6]
        s = torch.bmm(self.a(x), self.b(x).transpose(1, 2))  # [N, 4, 4]
        return s @ s


TORCH_CASES = {"single_head": (SingleHead, (32, 5, 8)), "multi_head": (MultiHead, (32, 6, 8)),
               "bmm_square": (Bmm, (32, 4, 6))}


def calibrated(net: torch.nn.Module, x: torch.Tensor):
    import dmxgen

    m = dmxgen.Model(net.eval()).transform(None)
    with m.calibrating():
        m(x)
    return m.eval()


def torch_model(name: str):
    net_cls, shape = TORCH_CASES[name]
    torch.manual_seed(0)
    x = torch.randn(*shape)
    return calibrated(net_cls(), x), x


def assert_codes_equal(m, x, kind: str):
    """The fake-quantized model's output codes are the integer reference's, on every sample."""
    from dmxgen.api import reference_outputs

    g = m.to_graph(x[:1])
    assert kind in [op.kind for op in g.ops]
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.unique(ref).size > 10, "a vacuous case: the outputs barely vary"
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"
    return g


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_matmul_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    m, x = torch_model(name)
    g = assert_codes_equal(m, x, "batch_matmul")
    want = {"single_head": 2, "multi_head": 2, "bmm_square": 2}[name]
    assert [op.kind for op in g.ops].count("batch_matmul") == want


def test_matmul_of_a_tensor_with_itself_reads_it_twice():
    m, x = torch_model("bmm_square")
    last = m.to_graph(x[:1]).ops[-1]
    assert last.kind == "batch_matmul" and last.inputs[0] == last.inputs[1]


def test_rank2_matmul_is_refused_naming_the_layer():
    from dmxgen.errors import DmxError

    class Rank2(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):  # [N, 4]: the product would mix the batch
            return self.a(x) @ self.b(x).transpose(0, 1)

    with pytest.raises(DmxError, match=r"layer 'matmul': matmul of tensors of ranks \[2, 2\] is not supported"):
        calibrated(Rank2(), torch.randn(8, 4))


def test_torch_attention_exports_and_verifies_on_the_host(tmp_path):
    from dmxgen.api import save

    from tests.torch.conftest import export_and_verify

    m, x = torch_model("single_head")
    export_and_verify(save(m, tmp_path / "attention.pt2", x), tmp_path / "c")


# -- nn.MultiheadAttention, rewritten before tracing (compress/attention.py) --------------------------
class Encoder(torch.nn.Module):
    """A transformer block's attention half: MultiheadAttention and a residual add."""

    def __init__(self, dim=8, heads=2, **kw):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True, **kw)

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=False)
        return x + y


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"kdim": 6, "vdim": 5}], ids=["packed", "no_bias", "kdim_vdim"])
def test_decomposed_attention_equals_torch_multihead_attention(kw):
    from dmxgen.compress.attention import DecomposedAttention

    torch.manual_seed(3)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True, **kw).eval()
    q = torch.randn(4, 5, 8)
    k, v = torch.randn(4, 7, kw.get("kdim", 8)), torch.randn(4, 7, kw.get("vdim", 8))  # cross-attention
    with torch.no_grad():
        want, _ = mha(q, k, v, need_weights=False)
        got, weights = DecomposedAttention(mha)(q, k, v, need_weights=False)
    assert weights is None
    assert torch.allclose(got, want, atol=1e-6), float((got - want).abs().max())


def test_multihead_attention_is_bit_exact_and_leaves_the_callers_net_alone():
    torch.manual_seed(0)
    net = Encoder().eval()
    x = torch.randn(32, 6, 8)
    m = calibrated(net, x)
    g = assert_codes_equal(m, x, "batch_matmul")
    kinds = [op.kind for op in g.ops]
    assert kinds.count("batch_matmul") == 2 and kinds.count("softmax_gemmlowp") == 1
    assert kinds.count("fully_connected") == 4  # q, k, v and the out projection
    assert isinstance(net.attn, torch.nn.MultiheadAttention)


@pytest.mark.parametrize("make, call, message", [
    (lambda: torch.nn.MultiheadAttention(8, 2), None, r"layer 'attn' \(MultiheadAttention\): only batch_first=True"),
    (None, lambda a, x: a(x, x, x)[0], r"layer 'attn' \(MultiheadAttention\): call it with need_weights=False"),
    (None, lambda a, x: a(x, x, x, need_weights=False, is_causal=True, attn_mask=torch.ones(6, 6).bool())[0],
     r"layer 'attn' \(MultiheadAttention\): masks are not supported"),
])
def test_multihead_attention_refusals_name_the_layer(make, call, message):
    from dmxgen.errors import DmxError

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = make() if make else torch.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return call(self.attn, x) if call else self.attn(x, x, x, need_weights=False)[0]

    with pytest.raises(DmxError, match=message):
        calibrated(Net().eval(), torch.randn(4, 6, 8))
