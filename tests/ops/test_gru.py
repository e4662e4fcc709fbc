"""gru (dmxgen's own kind, no TFLite builtin): the reference against a float64 GRU, shape checks,
the C (host, M55) and HLS kernels against the reference, the state kept across C runs and HLS calls.

There is no golden to be bit-exact with; the arithmetic is the integer LSTM's pieces (docs/lstm.md#gru),
so the checks are: the reference stays within a few output codes of the float GRU it quantizes, and
the fake-quantized PyTorch layer computes its codes to the bit (tests/torch/test_lstm_torch.py).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.backends import host
from dmxgen.backends.c import manifest_io
from dmxgen.errors import DmxError
from dmxgen.graph import Graph, Op, QuantParams, Tensor
from dmxgen.graph.fixedpoint import quantize_multiplier
from dmxgen.plan import plan_memory
from dmxgen.targets import export

from ._harness import Case
from ._targets import check_targets, targets
from .test_lstm import run_hls_sequence

GATES = ("reset", "update", "new")
VALID_ATTRS = [{"input_zp": 3, "state_zp": -2, "input_multiplier": [1374389535] * 3, "input_shift": [-1] * 3,
                "recurrent_multiplier": [1717986918] * 3, "recurrent_shift": [0] * 3,
                "output_multiplier": 1073741824, "output_shift": -7}]


def _q(scale, zp=0):
    return QuantParams(np.array([scale], np.float32), np.array([zp], np.int64))


def _float_gru(x, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's GRU equations in float64, from a zero state: [batch, time, hidden]."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h = np.zeros((x.shape[0], w_hh.shape[1]))
    outs = []
    for t in range(x.shape[1]):
        ir, iz, i_n = np.split(x[:, t] @ w_ih.T + b_ih, 3, axis=1)
        hr, hz, h_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
        r, z = sig(ir + hr), sig(iz + hz)
        h = (1 - z) * np.tanh(i_n + r * h_n) + z * h
        outs.append(h)
    return np.stack(outs, axis=1)


def gru_graph(w_ih, w_hh, b_ih, b_hh, s_x, zp_x, s_h, zp_h, batch, steps):
    """One gru op quantizing a float GRU as compress/gru.py does (one scale per gate matrix)."""
    n_in = w_ih.shape[1]
    g = Graph(source="t")
    g.add_tensor(Tensor("x", (batch, steps, n_in), "int8", _q(s_x, zp_x)))
    add_gru(g, "", "x", "y", w_ih, w_hh, b_ih, b_hh, s_x, zp_x, s_h, zp_h)
    g.inputs, g.outputs = ["x"], ["y"]
    g.validate()
    return g


def add_gru(g, prefix, x, y, w_ih, w_hh, b_ih, b_hh, s_x, zp_x, s_h, zp_h):
    """Append one gru op reading tensor x (scale s_x, zp_x) and writing y (s_h, zp_h), names prefixed."""
    hidden = w_hh.shape[1]
    batch, steps, _ = g.tensors[x].shape
    g.add_tensor(Tensor(y, (batch, steps, hidden), "int8", _q(s_h, zp_h)))
    ins, attrs = [x], {"input_zp": zp_x, "state_zp": zp_h}
    scales = {}
    for side, w in (("w", w_ih), ("r", w_hh)):
        for k in range(3):
            m = w[k * hidden:(k + 1) * hidden]
            s = float(np.float32(np.abs(m).max() / 127))
            scales[side, k] = s
            name = f"{prefix}{GATES[k]}_{side}"
            g.add_tensor(Tensor(name, m.shape, "int8", _q(s), np.round(m / s).astype(np.int8)))
            ins.append(name)
    for k in range(3):
        b = b_ih[k * hidden:(k + 1) * hidden] + (b_hh[k * hidden:(k + 1) * hidden] if k < 2 else 0)
        step = s_x * scales["w", k]
        g.add_tensor(Tensor(f"{prefix}{GATES[k]}_b", (hidden,), "int32", _q(step), np.round(b / step).astype(np.int32)))
        ins.append(f"{prefix}{GATES[k]}_b")
    step = s_h * scales["r", 2]
    g.add_tensor(Tensor(f"{prefix}new_rb", (hidden,), "int32", _q(step),
                        np.round(b_hh[2 * hidden:] / step).astype(np.int32)))
    g.add_tensor(Tensor(f"{prefix}h0", (batch, hidden), "int16", _q(2.0**-15), np.zeros((batch, hidden), np.int16)))
    ins += [f"{prefix}new_rb", f"{prefix}h0"]
    for side, s_act, key in (("w", s_x, "input"), ("r", s_h, "recurrent")):
        mults = [quantize_multiplier(scales[side, k] * s_act / 2.0**-12) for k in range(3)]
        attrs[f"{key}_multiplier"] = [m for m, _ in mults]
        attrs[f"{key}_shift"] = [s for _, s in mults]
    attrs["output_multiplier"], attrs["output_shift"] = quantize_multiplier(2.0**-15 / s_h)
    g.ops.append(Op(f"{prefix}gru", "gru", ins, [y], attrs))


def dequantized(g):
    """(w_ih, w_hh, b_ih, b_hh) in float64 from the graph's codes: the GRU the op quantizes exactly."""
    real = {name: g.tensors[name].data.astype(np.float64) * float(g.tensors[name].quant.scale[0])
            for name in g.ops[0].inputs[1:11]}
    w_ih = np.concatenate([real[f"{k}_w"] for k in GATES])
    w_hh = np.concatenate([real[f"{k}_r"] for k in GATES])
    b_ih = np.concatenate([real[f"{k}_b"] for k in GATES])
    b_hh = np.concatenate([np.zeros(2 * len(real["new_rb"])), real["new_rb"]])
    return w_ih, w_hh, b_ih, b_hh


@pytest.mark.parametrize("seed,n_in,hidden,steps,gain", [(0, 5, 8, 12, 1.0), (1, 10, 16, 30, 2.0),
                                                         (2, 3, 4, 6, 4.0)])
def test_gru_reference_is_within_a_code_of_the_float_gru(seed, n_in, hidden, steps, gain):
    """Weights and biases quantized to int8 / int32 as the PyTorch side does; every output code within 1 of
    the float64 GRU of the same (dequantized) weights on the same input. Measured over 30 seeds of these
    shapes: 29 within 1, one within 4 (a rounding of the int8 state fed back through 30 steps)."""
    rng = np.random.default_rng(seed)
    w_ih, w_hh = (rng.uniform(-gain, gain, (3 * hidden, n)) / np.sqrt(hidden) for n in (n_in, hidden))
    b_ih, b_hh = (rng.uniform(-gain, gain, 3 * hidden) / np.sqrt(hidden) for _ in range(2))
    s_x, zp_x, s_h, zp_h = 0.03, -5, 1 / 127, 0
    codes = rng.integers(-128, 128, (2, steps, n_in))
    g = gru_graph(w_ih, w_hh, b_ih, b_hh, s_x, zp_x, s_h, zp_h, 2, steps)
    got = reference.run(g, [codes.astype(np.int8)])["y"].astype(np.int64)
    want = np.clip(np.round(_float_gru((codes - zp_x) * s_x, *dequantized(g)) / s_h) + zp_h, -128, 127)
    assert np.abs(got - want).max() <= 1
    assert len(np.unique(got)) > 20


def test_gru_shape_errors_name_the_gate():
    rng = np.random.default_rng(0)
    g = gru_graph(rng.normal(size=(12, 3)), rng.normal(size=(12, 4)), np.zeros(12), np.zeros(12), 0.1, 0, 0.01, 0,
                  1, 2)
    g.tensors["update_r"] = Tensor("update_r", (4, 3), "int8", _q(0.1), np.zeros((4, 3), np.int8))
    with pytest.raises(DmxError, match=r"update gate recurrent weights \[4, 3\] should be \[4, 4\]"):
        g.validate()


# name: (seed, n_in, hidden sizes per layer, steps, batch, gain, input zp, output zps per layer).
# The firmware runs every third case: the stacked ones are first and fourth.
CASES = {
    "two_layers": (3, 5, (8, 6), 7, 2, 1.5, -5, (0, 3)),
    "small": (4, 3, (4,), 5, 1, 1.0, 0, (0,)),
    "saturating": (5, 4, (6,), 9, 1, 6.0, 20, (-30,)),
    "three_layers_wide": (6, 10, (16, 32, 12), 6, 1, 2.0, -128, (10, 0, -7)),
    "long_batch3": (7, 6, (12,), 16, 3, 2.0, 7, (1,)),
}


def case_graph(seed, n_in, hidden, steps, batch, gain, zp_x, zps) -> Graph:
    """A stack of gru ops of random float weights quantized as add_gru does; each layer's output the next's input."""
    rng = np.random.default_rng(seed)
    g = Graph(source="t")
    g.add_tensor(Tensor("x", (batch, steps, n_in), "int8", _q(0.04, zp_x)))
    x, s_x, n = "x", 0.04, n_in
    for layer, (size, zp) in enumerate(zip(hidden, zps)):
        w_ih, w_hh = (rng.uniform(-gain, gain, (3 * size, m)) / np.sqrt(size) for m in (n, size))
        b_ih, b_hh = (rng.uniform(-gain, gain, 3 * size) / np.sqrt(size) for _ in range(2))
        s_h = 1 / 127 + 0.0005 * layer
        add_gru(g, f"l{layer}_", x, f"y{layer}", w_ih, w_hh, b_ih, b_hh, s_x, zp_x, s_h, zp)
        x, s_x, zp_x, n = f"y{layer}", s_h, zp, size
    g.inputs, g.outputs = ["x"], [x]
    g.validate()
    return g


def case(name: str) -> Case:
    return Case(case_graph(*CASES[name]), [], [], n=6, seed=CASES[name][0])


@pytest.mark.parametrize("target", targets("gru"))
def test_gru_on_targets(tmp_path, target):
    """The C kernel equals the reference to the bit (every case on the host, ASan and UBSan; a sample on the M55)."""
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_gru_saturating_case_reaches_the_output_clamp():
    """The saturating case is not all small values: its outputs reach the int8 clamp below (zero point -30)
    and the state reaches +1 (tanh saturated: 127 codes above the zero point)."""
    c = case("saturating")
    sets = [np.random.default_rng(0).integers(-128, 128, (1, 9, 4)).astype(np.int8)]
    y = reference.run(c.m, sets)[c.m.outputs[0]]
    assert y.min() == -128 and y.max() == 127 + CASES["saturating"][-1][0]


def test_gru_state_is_a_persistent_region_of_the_plan():
    g = case_graph(*CASES["two_layers"])
    plan = plan_memory(g, {0: 8, 1: 6})
    states = plan.state_buffers
    assert [b.tensors for b in states] == [[op.inputs[11]] for op in g.ops]
    assert [b.size for b in states] == [2 * 8 * 2, 2 * 6 * 2]
    assert all(b.start == -1 and b.end == len(g.ops) for b in states)


def test_gru_state_is_kept_across_runs_and_reset(tmp_path):
    """Two dmx_model_run calls without a reset are one sequence of twice the steps; with the harness's reset
    before each vector, each runs from the zero state again (as the reference does)."""
    spec = (8, 5, (8, 6), 4, 2, 1.5, -5, (0, 3))
    g_short, g_long = case_graph(*spec), case_graph(*spec[:3], 2 * spec[3], *spec[4:])  # the same weights
    rng = np.random.default_rng(5)
    a, b = (rng.integers(-128, 128, (2, 4, 5)).astype(np.int8) for _ in range(2))
    out = tmp_path / "out"
    manifest = export(g_short, out, targets=("c",), n_vectors=1)
    inputs, outputs = manifest_io(manifest, "input"), manifest_io(manifest, "output")
    work = tmp_path / "build"
    work.mkdir()
    kept = host.run(host.build(out, work, extra=("-DDMX_HOST_KEEP_STATE",)), [[a], [b]], inputs, outputs, work,
                    dump=False)
    want = reference.run(g_long, [np.concatenate([a, b], axis=1)])[g_long.outputs[0]]
    assert np.array_equal(kept.outputs[0][0].reshape(2, 4, 6), want[:, :4])
    assert np.array_equal(kept.outputs[1][0].reshape(2, 4, 6), want[:, 4:])
    reset = host.run(host.build(out, work), [[a], [b]], inputs, outputs, work, dump=False)
    from_reset = reference.run(g_short, [b])[g_short.outputs[0]]
    assert np.array_equal(reset.outputs[1][0].reshape(2, 4, 6), from_reset)
    assert not np.array_equal(from_reset, want[:, 4:])  # the state matters: the two differ
    assert "dmx_model_reset_state" in (out / "model.h").read_text()


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="HLS csim needs g++, make")
@pytest.mark.parametrize("interface", ["array", "stream"])
def test_gru_hls_state_is_kept_across_calls_and_reset(tmp_path, interface):
    """dmx_top keeps each layer's Q0.15 state across calls: two calls without reset_state are one sequence of
    twice the steps; a call with reset_state runs from the zero state again (as the C model)."""
    spec = (8, 5, (8, 6), 4, 2, 1.5, -5, (0, 3))
    g_short, g_long = case_graph(*spec), case_graph(*spec[:3], 2 * spec[3], *spec[4:])  # the same weights
    rng = np.random.default_rng(5)
    a, b = (rng.integers(-128, 128, (2, 4, 5)).astype(np.int8) for _ in range(2))
    want = reference.run(g_long, [np.concatenate([a, b], axis=1)])[g_long.outputs[0]]
    from_reset = reference.run(g_short, [b])[g_short.outputs[0]]
    assert not np.array_equal(from_reset, want[:, 4:])  # the state matters: the two differ
    top = run_hls_sequence(tmp_path, g_short, [[a], [b], [b]], [[want[:, :4]], [want[:, 4:]], [from_reset]],
                           [True, False, True], interface)
    assert "bool reset_state" in top and "l0_gru (gru), l1_gru (gru)" in top


def test_gru_state_shared_by_two_layers_is_refused(tmp_path):
    """Two GRUs reading one state tensor would share its bytes in the C model: one line, no folder."""
    g = case_graph(*CASES["small"])
    first = g.ops[0]
    y2 = g.add_tensor(Tensor("y2", g.tensors[first.outputs[0]].shape, "int8", g.tensors[first.outputs[0]].quant))
    g.ops.append(Op("gru_1", "gru", first.inputs, [y2.name], dict(first.attrs)))  # the same x, weights and state
    g.outputs = [first.outputs[0], y2.name]
    with pytest.raises(DmxError) as e:
        export(g, tmp_path / "out", targets=("c",), n_vectors=1)
    assert str(e.value) == (f"layer 'l0_gru' (gru): state tensor {first.inputs[11]!r} is read by another input "
                            "or layer; the C model keeps one state per GRU")
    assert not (tmp_path / "out").exists()
