"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8, int16 cell state): the reference against LiteRT and TFLite Micro,
the C (host, M55) and HLS kernels against the reference, the state kept across calls, a keyword-spotting model.

Each model is the one-op file the TFLite converter writes for the 8x8_16 kernel: symmetric
per-tensor int8 weights, int32 biases, the output and cell states as variable tensors and
five intermediates (four Q3.12 gate scales, then the hidden state's).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen import firmware, reference
from dmxgen.backends import host
from dmxgen.backends.c import manifest_io
from dmxgen.backends.hls import write_hls
from dmxgen.backends.hls_csim import run_csim
from dmxgen.cli import main
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.ops._lstm_int import SIGMOID_TABLE_U16
from dmxgen.pipeline import lower
from dmxgen.plan import plan_memory
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets

GATES = ("input", "forget", "cell", "output")


def lstm_model(batch=1, steps=3, n_in=4, n_cell=8, n_out=None, *, time_major=False, seed=0,
               x_q=(0.02, 3), h_q=(1 / 128, 0), hidden_q=None, cell_scale=2.0**-11, w_scale=0.01,
               cell_clip=0.0, proj_clip=0.0, proj_bias=True, activation="TANH",
               weight_dtype="int8", input_dtype="int8", peephole=False, cifg=False, layer_norm=False,
               intermediates=5, state_data=False, cell_state_dtype="int16", per_channel=False,
               gate_bias=None, zero_weights=False, **options) -> Case:
    """One LSTM operator; `n_out` adds a projection of the hidden state (on `hidden_q`) to n_out values."""
    rng = np.random.default_rng(seed)
    projected = n_out is not None
    n_out = n_out if projected else n_cell
    hidden_q = hidden_q or (h_q if not projected else (1 / 100, -5))
    m = ModelBuilder()
    shape = [steps, batch, n_in] if time_major else [batch, steps, n_in]
    floaty = input_dtype == "float32"
    x = m.tensor("x", shape, input_dtype, *(() if floaty else x_q))

    def weight(name, rows, cols, scale):
        if weight_dtype == "float32":
            return m.tensor(name, [rows, cols], "float32", data=rng.standard_normal((rows, cols)))
        scales = np.full(rows, scale, np.float32) * (1 + np.arange(rows) / 10) if per_channel else scale
        values = np.zeros((rows, cols)) if zero_weights else rng.integers(-127, 128, (rows, cols))
        return m.tensor(name, [rows, cols], "int8", scale=scales, zero_point=np.zeros(np.size(scales)), data=values)

    def bias(name, n, scale, normalized=False):
        if weight_dtype == "float32" or floaty:
            return m.tensor(name, [n], "float32", data=rng.standard_normal(n))
        if normalized:  # a gate bias with layer norm: added after it, on the coefficients' scale / 1024
            return m.tensor(name, [n], "int32", scale=2.0**-20, zero_point=0, data=rng.integers(-500000, 500001, n))
        return m.tensor(name, [n], "int32", scale=scale, zero_point=0, data=rng.integers(-3000, 3001, n))

    s_in = [w_scale * (1 + k / 4) for k in range(4)]
    s_rec = [w_scale * (1.5 - k / 8) for k in range(4)]
    w_in = [weight(f"w_in_{g}", n_cell, n_in, s_in[k]) for k, g in enumerate(GATES)]
    w_rec = [weight(f"w_rec_{g}", n_cell, n_out, s_rec[k]) for k, g in enumerate(GATES)]
    peep = [m.tensor(f"peep_{g}", [n_cell], "int16", scale=0.001, zero_point=0,
                     data=rng.integers(-100, 100, n_cell)) for g in ("input", "forget", "output")] \
        if peephole else [-1, -1, -1]
    b = [bias(f"b_{g}", n_cell, x_q[0] * s_in[k], layer_norm) for k, g in enumerate(GATES)]
    if gate_bias is not None:  # one value per gate, the same for every cell
        b = [m.tensor(f"b_{g}", [n_cell], "int32", scale=x_q[0] * s_in[k], zero_point=0,
                      data=np.full(n_cell, gate_bias[k])) for k, g in enumerate(GATES)]
    if projected:
        pw = weight("w_proj", n_out, n_cell, w_scale / 2)
        pb = bias("b_proj", n_out, hidden_q[0] * w_scale / 2) if proj_bias else -1
    else:
        pw = pb = -1
    h = m.tensor("h_state", [batch, n_out], "int8" if not floaty else "float32",
                 *((h_q) if not floaty else ()), data=np.full((batch, n_out), h_q[1]) if state_data else None,
                 is_variable=True)
    c = m.tensor("c_state", [batch, n_cell], cell_state_dtype if not floaty else "float32",
                 *((cell_scale, 0) if not floaty else ()), is_variable=True)
    ln = [m.tensor(f"ln_{g}", [n_cell], "int16", scale=1 / 1024, zero_point=0,
                   data=rng.integers(500, 1500, n_cell)) for g in GATES] if layer_norm else [-1] * 4
    y = m.tensor("y", [steps, batch, n_out] if time_major else [batch, steps, n_out],
                 "int8" if not floaty else "float32", *((h_q) if not floaty else ()))
    # the gates' intermediate scales: LiteRT reads them with layer norm only
    gate_scales = [0.0007 * (1 + k / 3) for k in range(4)] if layer_norm else [2.0**-12] * 4
    inter = [m.tensor(f"inter_{g}", [0], "int16", scale=gate_scales[k], zero_point=0) for k, g in enumerate(GATES)]
    inter.append(m.tensor("inter_hidden", [0], "int8", scale=hidden_q[0], zero_point=hidden_q[1]))
    ins = [x, *([-1] if cifg else w_in[:1]), *w_in[1:], *([-1] if cifg else w_rec[:1]), *w_rec[1:],
           *peep, *([-1] if cifg else b[:1]), *b[1:], pw, pb, h, c, *ln]
    m.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], intermediates=inter[:intermediates],
         fusedActivationFunction={"TANH": 4, "RELU": 1, "SIGMOID": 6}[activation], cellClip=cell_clip,
         projClip=proj_clip, timeMajor=time_major, **options)
    return Case(m, [x], [y])


# name -> (builder kwargs, goldens it runs against); TFLite Micro has no projection
CASES = {
    "b1_t3_i4_c8": (dict(), ("tflite", "tflm")),
    "b2_t4_i3_c4": (dict(batch=2, steps=4, n_in=3, n_cell=4, seed=1), ("tflite", "tflm")),
    "b2_t6_i8_c16_time_major": (dict(batch=2, steps=6, n_in=8, n_cell=16, time_major=True, seed=2),
                                ("tflite", "tflm")),
    "b1_t1_i5_c12": (dict(steps=1, n_in=5, n_cell=12, seed=3), ("tflite", "tflm")),
    "extreme_zero_points": (dict(batch=2, steps=5, n_in=6, n_cell=8, x_q=(0.03, -128), h_q=(1 / 100, 127),
                                 seed=4), ("tflite", "tflm")),
    "negative_state_zp_time_major": (dict(batch=2, steps=3, n_cell=6, x_q=(0.015, 127), h_q=(1 / 90, -128),
                                          time_major=True, seed=5), ("tflite", "tflm")),
    "cell_clip": (dict(batch=2, steps=6, n_cell=8, cell_clip=0.4, w_scale=0.03, seed=6), ("tflite", "tflm")),
    "cell_scale_2e-13": (dict(steps=4, cell_scale=2.0**-13, seed=7), ("tflite", "tflm")),
    "cell_scale_2e-9_large_weights": (dict(batch=2, steps=4, cell_scale=2.0**-9, w_scale=0.04, seed=8),
                                      ("tflite", "tflm")),
    "projection": (dict(batch=2, steps=4, n_in=5, n_cell=8, n_out=6, seed=9), ("tflite",)),
    "projection_no_bias_time_major": (dict(batch=1, steps=3, n_cell=8, n_out=4, proj_bias=False,
                                           time_major=True, seed=10), ("tflite",)),
    "projection_clip": (dict(batch=2, steps=3, n_cell=16, n_out=8, proj_clip=0.3, hidden_q=(1 / 60, 20),
                             seed=11), ("tflite",)),
    # only the hybrid kernel reads it
    "asymmetric_quantize_inputs_ignored": (dict(batch=2, steps=3, asymmetricQuantizeInputs=True, seed=12),
                                           ("tflite", "tflm")),
    # LiteRT only: the gates' intermediate scales, the int16 coefficients; 6 cells is not a power of two
    "layer_norm": (dict(batch=2, steps=4, n_in=5, n_cell=8, layer_norm=True, seed=13), ("tflite",)),
    "layer_norm_6_cells_time_major": (dict(batch=2, steps=3, n_in=4, n_cell=6, layer_norm=True, time_major=True,
                                           x_q=(0.02, -100), h_q=(1 / 120, 30), seed=14), ("tflite",)),
    "layer_norm_projection": (dict(batch=1, steps=5, n_in=3, n_cell=8, n_out=5, layer_norm=True, seed=15),
                              ("tflite",)),
    # Zero weights, so the gates are the biases' activations, chosen (by a search over the biases) so that
    # a cell product lands where one rounding (LiteRT: f * c >> 15, i * g >> 21) and two (TFLite Micro's
    # MultiplyByQuantizedMultiplier) differ: with the other golden's rounding the outputs move by one.
    # The output does not depend on the input: one or two values over every input set.
    "cell_rounding_litert": (dict(steps=3, n_in=3, n_cell=4, zero_weights=True, cell_scale=2.0**-9,
                                  h_q=(1 / 1024, 0), gate_bias=(-11915, -17770, 8000, 0)), ("tflite",)),
    "cell_rounding_tflm": (dict(steps=2, n_in=3, n_cell=4, zero_weights=True, cell_scale=2.0**-9,
                                h_q=(1 / 1024, 0), gate_bias=(-14129, 0, 6493, 0)), ("tflm",)),
}
WHY_NOT = {  # why a case does not run against a golden
    "tflm": "TFLite Micro's UNIDIRECTIONAL_SEQUENCE_LSTM has no projection (its Prepare refuses projection "
            "weights); dmxgen refuses it with --semantics tflm",
    "layer_norm": "TFLite Micro's LSTM has no layer norm (its Prepare refuses the coefficients)",
    "layer_norm_6_cells_time_major": "TFLite Micro's LSTM has no layer norm (its Prepare refuses the coefficients)",
    "layer_norm_projection": "TFLite Micro's LSTM has neither layer norm nor projection",
    "cell_rounding_litert": "its biases make LiteRT's rounding differ from TFLite Micro's, whose gates differ too",
    "cell_rounding_tflm": "its biases make TFLite Micro's rounding differ from LiteRT's, whose gates differ too",
}
GOLDEN_CASES = [(name, golden) for name, (_, goldens) in CASES.items() for golden in ("tflite", "tflm")]


def case(name: str) -> Case:
    return lstm_model(**CASES[name][0])


@pytest.mark.parametrize("name,golden", GOLDEN_CASES)
def test_lstm_matches_golden(tmp_path, name, golden):
    if golden not in CASES[name][1]:
        pytest.skip(WHY_NOT.get(name, WHY_NOT["tflm"]))
    check_case(case(name), tmp_path, goldens=(golden,), min_distinct=1 if "cell_rounding" in name else 8)


VALID_ATTRS = [
    {"layout": "batch_major", "semantics": "tflite", "input_zp": 3, "state_zp": 0,
     "input_multiplier": [1374389535] * 4, "input_shift": [-1] * 4,
     "recurrent_multiplier": [1717986918] * 4, "recurrent_shift": [0] * 4,
     "hidden_multiplier": 1073741824, "hidden_shift": -7, "hidden_zp": 0, "cell_shift": -11},
    {"layout": "time_major", "semantics": "tflm", "input_zp": -128, "state_zp": 127,
     "input_multiplier": [1374389535] * 4, "input_shift": [-1] * 4,
     "recurrent_multiplier": [1717986918] * 4, "recurrent_shift": [0] * 4,
     "hidden_multiplier": 1073741824, "hidden_shift": -7, "hidden_zp": 127, "cell_shift": -11,
     "cell_clip": 800, "forget_mul": (1073741824, -14), "update_mul": (1073741824, -7)},
    {"layout": "batch_major", "semantics": "tflite", "input_zp": 0, "state_zp": -5,
     "input_multiplier": [1374389535] * 4, "input_shift": [-1] * 4,
     "recurrent_multiplier": [1717986918] * 4, "recurrent_shift": [0] * 4,
     "hidden_multiplier": 1073741824, "hidden_shift": -7, "hidden_zp": 3, "cell_shift": -12,
     "proj_multiplier": 1288490189, "proj_shift": -2, "proj_clip": 100,
     "layer_norm_multiplier": [1073741824] * 4, "layer_norm_shift": [-9] * 4, "variance_guard": [9] * 4},
]


WHERE = "operator 0 (UNIDIRECTIONAL_SEQUENCE_LSTM, output 'y'): "
REFUSALS = {
    "float": (dict(input_dtype="float32", weight_dtype="float32"),
              "float LSTM (float32 activations, float32 weights) is not supported; "
              "only the integer kernel (int8 activations and weights, int16 cell state)"),
    "hybrid": (dict(input_dtype="float32"),
               "hybrid LSTM (float32 activations, int8 weights) is not supported; "
               "only the integer kernel (int8 activations and weights, int16 cell state)"),
    "relu": (dict(activation="RELU"), "fused activation RELU is not supported; the integer LSTM computes TANH"),
    "peephole": (dict(peephole=True), "peephole connections (cell_to_*_weights) are not supported"),
    "cifg": (dict(cifg=True), "CIFG LSTM (no input gate) is not supported"),
    "negative_cell_clip": (dict(cell_clip=-1.0), "cell_clip -1 must be a finite number >= 0 (0: no clipping)"),
    "diagonal": (dict(diagonalRecurrentTensors=True),
                 "diagonal recurrent weights (diagonal_recurrent_tensors) are not supported"),
    "cell_scale_not_pot": (dict(cell_scale=0.0003),
                           "the cell state 'c_state' has scale 0.0003; the integer LSTM needs a power of two"),
    "cell_scale_too_large": (dict(cell_scale=2.0**-8),
                             "the cell state 'c_state' has scale 2^-8; the integer LSTM handles 2^-15 to 2^-9"),
    "int8_cell_state": (dict(cell_state_dtype="int8"),
                        "the cell state 'c_state' is int8; the integer LSTM keeps it in int16"),
    "no_intermediates": (dict(intermediates=0),
                         "has 0 intermediate tensors; the integer LSTM needs the 5 the TFLite converter writes "
                         "(gate and hidden scales)"),
    "state_with_data": (dict(state_data=True),
                        "the output state 'h_state' holds data; TFLite resets a state tensor when it allocates"),
    "per_channel": (dict(per_channel=True),
                    "input-to-input weights 'w_in_input' must be quantized per tensor with zero point 0 "
                    "(the integer LSTM reads one scale)"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_lstm_refusals(tmp_path, name):
    kwargs, message = REFUSALS[name]
    c = lstm_model(**kwargs)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    with pytest.raises(DmxError) as e:
        load_tflite(path)
    assert str(e.value) == f"{path}: {WHERE}{message}"


def test_lstm_projection_refused_with_tflm_semantics(tmp_path):
    c = case("projection")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    assert load_tflite(path).ops[0].kind == "lstm"
    with pytest.raises(DmxError) as e:
        load_tflite(path, semantics="tflm")
    assert str(e.value) == (f"{path}: {WHERE}LSTM projection is not supported with --semantics tflm "
                            "(TFLite Micro's LSTM has none)")


def test_lstm_states_start_from_their_reset_values(tmp_path):
    """The state tensors become constants holding what TFLite resets them to: zero point, zero."""
    c = case("extreme_zero_points")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    h, cell = (g.tensors[g.ops[0].inputs[i]] for i in (13, 14))
    assert h.dtype == "int8" and np.all(h.data == 127) and cell.dtype == "int16" and np.all(cell.data == 0)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_lstm_verifies_through_the_cli(tmp_path, golden):
    """`dmxgen verify` runs the reference against each golden: exit 0, bit-exact."""
    c = case("b2_t4_i3_c4")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    r = CliRunner().invoke(main, ["verify", str(path), "--golden", golden, "--json"], catch_exceptions=False)
    assert r.exit_code == 0 and json.loads(r.output)["bit_exact"], r.output


# every case, LiteRT's arithmetic, and TFLite Micro's for the cases it runs
TFLM_CASES = [name for name, (_, goldens) in CASES.items() if "tflm" in goldens]


@pytest.mark.parametrize("target", targets("lstm"))
def test_lstm_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=TFLM_CASES)


def _disjoint(a, b) -> bool:
    return a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


def test_lstm_states_are_a_persistent_region_of_the_plan(tmp_path):
    """The two states live for the whole run and after it: no other buffer of the arena shares their bytes."""
    c = kws_lstm_model()
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    plan = plan_memory(g, {0: 9 * 24})
    states = plan.state_buffers
    lstm = g.ops[0]
    assert [b.tensors for b in states] == [[lstm.inputs[13]], [lstm.inputs[14]]]
    assert [b.size for b in states] == [24, 48] and all(b.start == -1 and b.end == len(g.ops) for b in states)
    others = [b for b in plan.arena_buffers if not b.persistent]
    assert others and all(_disjoint(s, b) for s in states for b in others + [t for t in states if t is not s])


def _io(manifest: dict) -> tuple[list[dict], list[dict]]:
    """The manifest's inputs and outputs, as host.run takes them."""
    return manifest_io(manifest, "input"), manifest_io(manifest, "output")


def _short_and_long(tmp_path):
    """(steps, an LSTM of 3 steps, the same weights over 6 steps, two 3-step inputs a and b): a then b
    carried across calls must be the long model's run of a + b."""
    steps, kw = 3, dict(batch=2, n_in=5, n_cell=8, n_out=6, seed=21)
    short, long_ = lstm_model(steps=steps, **kw), lstm_model(steps=2 * steps, **kw)  # the same weights
    g_short = load_tflite(save(short.m, tmp_path, short.inputs, short.outputs, name="short"))
    g_long = load_tflite(save(long_.m, tmp_path, long_.inputs, long_.outputs, name="long"))
    rng = np.random.default_rng(5)
    a, b = (rng.integers(-128, 128, (2, steps, 5)).astype(np.int8) for _ in range(2))
    return steps, g_short, g_long, a, b


def test_lstm_state_is_kept_across_runs_and_reset(tmp_path):
    """Two dmx_model_run calls without a reset are one sequence of twice the steps (as two invoke()s of
    TFLite); the harness's reset before each vector makes each one run from the reset state again."""
    steps, g_short, g_long, a, b = _short_and_long(tmp_path)
    out = tmp_path / "out"
    manifest = export(g_short, out, targets=("c",), n_vectors=1)
    inputs, outputs = _io(manifest)
    work = tmp_path / "build"
    work.mkdir()
    kept = host.run(host.build(out, work, extra=("-DDMX_HOST_KEEP_STATE",)), [[a], [b]], inputs, outputs, work,
                    dump=False)
    (want,) = reference.run(g_long, [np.concatenate([a, b], axis=1)]).values()
    assert np.array_equal(kept.outputs[0][0].reshape(2, steps, 6), want[:, :steps])
    assert np.array_equal(kept.outputs[1][0].reshape(2, steps, 6), want[:, steps:])
    reset = host.run(host.build(out, work), [[a], [b]], inputs, outputs, work, dump=False)
    (from_reset,) = reference.run(g_short, [b]).values()
    assert np.array_equal(reset.outputs[1][0].reshape(2, steps, 6), from_reset)
    assert not np.array_equal(from_reset, want[:, steps:])  # the state matters: the two differ
    litert = pytest.importorskip("ai_edge_litert.interpreter")  # and LiteRT's two invoke()s agree
    it = litert.Interpreter(model_path=str(tmp_path / "short.tflite"),
                            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for chunk, got in zip((a, b), kept.outputs):
        it.set_tensor(it.get_input_details()[0]["index"], chunk)
        it.invoke()
        assert np.array_equal(it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1), got[0])


_needs_gxx = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None,
                                reason="HLS csim needs g++ and make")


def run_hls_sequence(tmp_path, graph, vectors, expected, resets, interface="array") -> str:
    """The HLS export of `graph` with `vectors` as one sequence of dmx_top calls, call k with
    reset_state = resets[k]; asserts the csim (ASan, UBSan) gives `expected` to the bit, returns top.h."""
    out = tmp_path / f"hls_{interface}"
    write_hls(lower(graph, []), out, interface=interface, sample_inputs=vectors, expected_outputs=expected,
              state_resets=resets)
    assert (out / "hls" / "tb_data" / "reset.dat").read_text() == "".join(f"{int(r)}\n" for r in resets)
    r = run_csim(out, opt="-O1", sanitize=True)
    values = sum(np.asarray(e).size for e in expected)
    assert r.returncode == 0 and f"PASS: {len(vectors)} vectors, {values} output values bit-exact" in r.stdout, (
        r.stdout[-3000:] + r.stderr[-3000:])
    return (out / "hls" / "top.h").read_text()


@_needs_gxx
@pytest.mark.parametrize("interface", ["array", "stream"])
def test_lstm_hls_state_is_kept_across_calls_and_reset(tmp_path, interface):
    """dmx_top keeps the states across calls: two calls without reset_state are one sequence of twice the
    steps; a call with reset_state runs from the reset state again (as the C model, docs/lstm.md)."""
    steps, g_short, g_long, a, b = _short_and_long(tmp_path)
    (want,) = reference.run(g_long, [np.concatenate([a, b], axis=1)]).values()
    (from_reset,) = reference.run(g_short, [b]).values()
    assert not np.array_equal(from_reset, want[:, steps:])  # the state matters: the two differ
    # a, b carried: the long sequence; then b after a reset; then b carried on from it
    (b_after_b,) = reference.run(g_long, [np.concatenate([b, b], axis=1)]).values()
    top = run_hls_sequence(tmp_path, g_short, [[a], [b], [b], [b]],
                           [[want[:, :steps]], [want[:, steps:]], [from_reset], [b_after_b[:, steps:]]],
                           [True, False, True, False], interface)
    assert "bool reset_state" in top and "DMX_TOP_HAS_STATE" in top


def test_hls_state_resets_are_checked_and_stateless_tops_have_no_reset_port(tmp_path):
    """state_resets needs a model with state and one flag per vector; a model without state gets no port."""
    c = lstm_model(seed=23)
    g = lower(load_tflite(save(c.m, tmp_path, c.inputs, c.outputs)), [])
    x = np.zeros(g.tensors[g.inputs[0]].shape, np.int8)
    (y,) = reference.run(g, [x]).values()
    with pytest.raises(DmxError, match=r"^HLS backend: 1 state resets for 2 vectors$"):
        write_hls(g, tmp_path / "a", sample_inputs=[x, x], expected_outputs=[y, y], state_resets=[True])
    assert not (tmp_path / "a").exists()  # refused before writing
    m = ModelBuilder()
    xt = m.tensor("x", [1, 8], scale=0.05, zero_point=0)
    w = m.tensor("w", [4, 8], scale=0.02, zero_point=0, data=np.arange(32).reshape(4, 8) - 16)
    yt = m.tensor("y", [1, 4], scale=0.1, zero_point=0)
    m.op("FULLY_CONNECTED", [xt, w, -1], [yt])
    fc = lower(load_tflite(save(m, tmp_path, [xt], [yt], name="fc")), [])
    x8 = np.zeros((1, 8), np.int8)
    (y8,) = reference.run(fc, [x8]).values()
    with pytest.raises(DmxError, match=r"^HLS backend: state_resets given, but the model keeps no state$"):
        write_hls(fc, tmp_path / "b", sample_inputs=[x8], expected_outputs=[y8], state_resets=[True])
    write_hls(fc, tmp_path / "c", sample_inputs=[x8], expected_outputs=[y8])
    hls = tmp_path / "c" / "hls"
    assert "reset_state" not in (hls / "top.h").read_text() + (hls / "top.cpp").read_text()
    assert not (hls / "tb_data" / "reset.dat").exists()


def test_lstm_state_shared_by_two_layers_is_refused(tmp_path):
    """Two LSTMs reading one state tensor would share its bytes in the C model: one line, no folder."""
    from dmxgen.graph import Op, Tensor

    c = lstm_model(n_in=8, n_cell=8, seed=22)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    first = g.ops[0]
    y2 = g.add_tensor(Tensor("y2", g.tensors[first.outputs[0]].shape, "int8", g.tensors[first.outputs[0]].quant))
    g.ops.append(Op("lstm_1", "lstm", [first.outputs[0]] + first.inputs[1:], [y2.name], dict(first.attrs)))
    g.outputs = [y2.name]
    with pytest.raises(DmxError) as e:
        export(g, tmp_path / "out", targets=("c",), n_vectors=1)
    assert str(e.value) == (f"layer 'lstm_0' (lstm): state tensor {first.inputs[13]!r} is read by another input "
                            "or layer; the C model keeps one state per LSTM")
    assert not (tmp_path / "out").exists()


def test_models_without_lstm_keep_no_state(tmp_path):
    """No state, no reset function: model.h and model.c are as before."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.05, zero_point=0)
    w = m.tensor("w", [4, 8], scale=0.02, zero_point=0, data=np.arange(32).reshape(4, 8) - 16)
    y = m.tensor("y", [1, 4], scale=0.1, zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, -1], [y])
    out = tmp_path / "out"
    export(load_tflite(save(m, tmp_path, [x], [y])), out, targets=("c",), n_vectors=1)
    assert "state" not in (out / "model.h").read_text() + (out / "model.c").read_text()


def kws_lstm_model(n_cell=24, seed=30) -> Case:
    """Keyword spotting on an LSTM: 49 frames of 10 MFCC features -> LSTM(n_cell) -> the last step (STRIDED_SLICE,
    as the converter writes return_sequences=False) -> FULLY_CONNECTED to 12 classes -> SOFTMAX."""
    c = lstm_model(batch=1, steps=49, n_in=10, n_cell=n_cell, x_q=(0.1, -20), w_scale=0.02, seed=seed)
    m, rng = c.m, np.random.default_rng(seed)
    consts = [m.tensor(n, [3], "int32", data=v) for n, v in
              (("begin", [0, 48, 0]), ("end", [1, 49, n_cell]), ("strides", [1, 1, 1]))]
    last = m.tensor("last", [1, n_cell], scale=1 / 128, zero_point=0)
    m.op("STRIDED_SLICE", [c.outputs[0], *consts], [last], shrinkAxisMask=0b010)
    w = m.tensor("fc_w", [12, n_cell], scale=0.01, zero_point=0, data=rng.integers(-127, 128, (12, n_cell)))
    b = m.tensor("fc_b", [12], "int32", scale=0.01 / 128, zero_point=0, data=rng.integers(-2000, 2001, 12))
    logits = m.tensor("logits", [1, 12], scale=0.05, zero_point=3)
    m.op("FULLY_CONNECTED", [last, w, b], [logits])
    probs = m.tensor("probs", [1, 12], scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [logits], [probs], beta=1.0)
    return Case(m, c.inputs, [probs])


@pytest.fixture(scope="module")
def kws_folder(tmp_path_factory):
    """The keyword-spotting LSTM exported by `dmxgen export` (2 random vectors), C and HLS (AXI streams)."""
    tmp = tmp_path_factory.mktemp("kws_lstm")
    c = kws_lstm_model()
    path = save(c.m, tmp, c.inputs, c.outputs, name="kws_lstm")
    out = tmp / "out"
    r = CliRunner().invoke(main, ["export", str(path), "-o", str(out), "--vectors", "2", "--target", "c,hls",
                                  "--hls-interface", "stream"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_kws_lstm_exports_and_verifies_bit_exact(kws_folder):
    """`dmxgen verify` on the folder: the C on the host (sanitized) against the reference, and the reference
    against LiteRT, every vector to the bit."""
    r = CliRunner().invoke(main, ["verify", str(kws_folder), "--json", "--inputs", "3"], catch_exceptions=False)
    result = json.loads(r.output)
    assert r.exit_code == 0 and result["bit_exact"] and result["inputs"] == 3, r.output
    assert result["source_vs_golden"]["golden"] == "tflite" and result["source_vs_golden"]["bit_exact"], r.output
    manifest = json.loads((kws_folder / "manifest.json").read_text())
    assert [layer["op"] for layer in manifest["layers"]] == ["lstm", "strided_slice", "fully_connected", "softmax"]
    assert "dmx_model_reset_state" in (kws_folder / "model.h").read_text()


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="HLS csim needs g++, make")
def test_kws_lstm_hls_csim_is_bit_exact(kws_folder):
    """`make -C hls csim` (g++ with ASan and UBSan) on the stream interface: every stored vector to the bit."""
    r = run_csim(kws_folder, sanitize=True)
    assert r.returncode == 0 and "PASS: 2 vectors, 24 output values bit-exact" in r.stdout, r.stdout + r.stderr


@pytest.mark.firmware
@pytest.mark.skipif(bool(firmware.missing_tools()), reason="needs the firmware tools (tools/setup.sh)")
def test_kws_lstm_passes_on_the_m55(kws_folder, tmp_path):
    """The firmware on the emulated Cortex-M55 gives expected.h (the reference's output) to the bit."""
    r = firmware.run(kws_folder, build_dir=tmp_path / "build", timeout=300)
    assert r.passed and r.exit_status == 0, r.log[-2000:]
    manifest = json.loads((kws_folder / "manifest.json").read_text())
    x = np.load(kws_folder / manifest["test_vectors"]["inputs"])[manifest["sample"]["index"]]
    graph = load_tflite(kws_folder.parent / "kws_lstm.tflite")
    (want,) = reference.run(graph, [x]).values()
    assert np.array_equal(np.array(r.outputs, np.int8), want.reshape(-1))


TFLM_COMMON_H = (Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "tflm" / "tflite-micro"
                 / "tensorflow" / "lite" / "kernels" / "internal" / "common.h")


def test_sigmoid_table_is_tflites():
    """The table TFLite Micro's int16 Logistic and Tanh interpolate, read from its source when present."""
    if not TFLM_COMMON_H.exists():
        pytest.skip(f"{TFLM_COMMON_H} is absent (the TFLite Micro sources under ../shared)")
    text = TFLM_COMMON_H.read_text()
    body = text[text.index("sigmoid_table_uint16[256] = {"):]
    values = [int(v) for v in re.findall(r"\d+", body[body.index("{") + 1:body.index("}")])]
    assert values == SIGMOID_TABLE_U16.tolist()


def test_lstm_weights_are_matrices_to_the_codecs():
    """Each gate weight is an [out, in] matrix (the dense view `compress` and `inspect --formats` read)."""
    from dmxgen.codecs import CodecError
    from dmxgen.codecs.view import as_matrix, matrix_shape

    w = np.arange(12, dtype=np.int8).reshape(4, 3)
    assert matrix_shape("lstm", (4, 3)) == (4, 3) and as_matrix("lstm", w) is not None
    assert np.array_equal(as_matrix("lstm", w), w)
    with pytest.raises(CodecError, match=r"lstm weight must be \[out, in\], got shape \(4, 3, 1\)"):
        matrix_shape("lstm", (4, 3, 1))
