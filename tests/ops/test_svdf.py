"""SVDF (fully integer: int8 input and feature weights, int16 time weights and activation state): the reference
against LiteRT and TFLite Micro, the C (host, M55) and HLS kernels against the reference, the state kept across
calls (C and HLS), and a keyword-spotting model of two SVDFs.

Each model is one SVDF operator as the TFLite converter writes it: per-tensor symmetric int8 feature weights,
int16 time weights, an int32 bias on s_state * s_time (or none), the int16 activation state a variable tensor
with zero point 0.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from dmxgen import firmware, reference
from dmxgen.backends import host
from dmxgen.backends.c import manifest_io
from dmxgen.backends.hls_csim import run_csim
from dmxgen.cli import main
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import _load_tflm, run_golden_layers
from dmxgen.ops import SPECS
from dmxgen.plan import plan_memory
from dmxgen.targets import export
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, case_sets, check_case, compare, save
from ._targets import check_targets, targets
from .test_lstm import run_hls_sequence

TYPICAL_STATE = 4000  # the state codes a typical feature activation lands on
TYPICAL_TIME_WEIGHT = 1150  # mean |w| of time weights drawn from +-2000


def svdf_model(batch=1, n_in=8, units=4, rank=1, memory=4, *, seed=0, x_q=(0.05, 3), out_zp=-5, out_spread=1.0,
               activation="RELU", bias=True, input_dtype="int8", feature_dtype="int8", time_dtype="int16",
               state_dtype="int16", state_zp=0, state_data=False, per_channel=False, feature_zp=0,
               bias_scale=None, n=8, extra=()) -> Case:
    """One SVDF operator; the state and output scales put typical values mid-range (out_spread > 1: wider)."""
    rng = np.random.default_rng(seed)
    n_filter = units * rank
    m = ModelBuilder()
    floaty = input_dtype == "float32"
    x = m.tensor("x", [batch, n_in], input_dtype, *(() if floaty else x_q))
    s_wf, s_wt = 0.01, 2.0**-12
    s_state = x_q[0] * s_wf * np.sqrt(n_in) * 74 * 74 / TYPICAL_STATE
    s_out = s_state * s_wt * TYPICAL_STATE * TYPICAL_TIME_WEIGHT * np.sqrt(rank) / 40 * out_spread
    if feature_dtype == "float32":
        wf = m.tensor("w_feature", [n_filter, n_in], "float32", data=rng.standard_normal((n_filter, n_in)))
    else:
        scales = s_wf * (1 + np.arange(n_filter) / 10) if per_channel else s_wf
        wf = m.tensor("w_feature", [n_filter, n_in], feature_dtype, scales, feature_zp,
                      data=rng.integers(-127, 128, (n_filter, n_in)))
    bound = 2000 if time_dtype == "int16" else 127
    wt = m.tensor("w_time", [n_filter, memory], time_dtype, s_wt, 0, data=rng.integers(-bound, bound + 1,
                                                                                      (n_filter, memory)))
    magnitude = TYPICAL_STATE * TYPICAL_TIME_WEIGHT // 4
    b = m.tensor("bias", [units], "int32", bias_scale or s_state * s_wt, 0,
                 data=rng.integers(-magnitude, magnitude + 1, units)) if bias else -1
    state = m.tensor("state", [batch, n_filter * memory], state_dtype, s_state, state_zp,
                     data=np.zeros((batch, n_filter * memory)) if state_data else None, is_variable=True)
    y = m.tensor("y", [batch, units], "float32" if floaty else "int8", *(() if floaty else (s_out, out_zp)))
    m.op("SVDF", [x, wf, wt, b, state], [y], rank=rank, fusedActivationFunction=activation)
    return Case(m, [x], [y], n=n, extra=[list(e) for e in extra])


def state_rounding_model() -> Case:
    """The feature multiplier matters: LiteRT computes s_x * s_wf / s_state in float32 (1448436224, shift -2),
    TFLite Micro in double (1448436189), and with the all-127 input the filter's dot product, 149326 (found by a
    search over the products), rounds to state 25180 with the first and 25179 with the second. The bias puts
    the output's rounding boundary between the two, so the outputs differ by one (1 and 0)."""
    s_x, s_wf, s_state = 0.06732655316591263, 0.006856160704046488, 0.0027375235222280025
    w, s_wt = 16000, 1e-4
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], "int8", s_x, -70)
    wf = m.tensor("w_feature", [1, 8], "int8", s_wf, 0, data=[[95] * 7 + [93]])  # a row sum of 758 = 149326 / 197
    wt = m.tensor("w_time", [1, 2], "int16", s_wt, 0, data=[[-700, w]])
    b = m.tensor("bias", [1], "int32", float(np.float32(s_state) * np.float32(s_wt)), 0, data=[-w * 25179])
    state = m.tensor("state", [1, 2], "int16", s_state, 0, is_variable=True)
    y = m.tensor("y", [1, 1], "int8", s_state * s_wt * w, 0)
    m.op("SVDF", [x, wf, wt, b, state], [y], rank=1, fusedActivationFunction="RELU")
    return Case(m, [x], [y], n=8)


def output_rounding_model() -> Case:
    """The output multiplier matters: zero time weights leave the bias, -22339832, which s_state * s_wt / s_out in
    float32 (LiteRT: 1505663104, shift -17) and in double (TFLite Micro: 1505662996) round to -120 and -119
    (found by a search over scales and biases). The output does not depend on the input."""
    s_state, s_wt, s_out = 0.0008854212355799973, 0.00024444240261800587, 0.04046117514371872
    m = ModelBuilder()
    rng = np.random.default_rng(40)
    x = m.tensor("x", [1, 6], "int8", 0.05, 0)
    wf = m.tensor("w_feature", [4, 6], "int8", 0.01, 0, data=rng.integers(-127, 128, (4, 6)))
    wt = m.tensor("w_time", [4, 3], "int16", s_wt, 0, data=np.zeros((4, 3)))
    b = m.tensor("bias", [2], "int32", float(np.float32(s_state) * np.float32(s_wt)), 0, data=[-22339832, 1000])
    state = m.tensor("state", [1, 12], "int16", s_state, 0, is_variable=True)
    y = m.tensor("y", [1, 2], "int8", s_out, 0)
    m.op("SVDF", [x, wf, wt, b, state], [y], rank=2, fusedActivationFunction="RELU")
    return Case(m, [x], [y], n=2)


def int32_wrap_model() -> Case:
    """Sums beyond int32: the feature activations saturate at +-32767 (a tiny state scale), each time weight is
    +-32767 and the biases are int32's ends, so a unit's sum of four products and its bias wraps (as TFLite's
    int32 accumulators do; the C and HLS kernels wrap an int64 sum, without undefined behaviour)."""
    rng = np.random.default_rng(50)
    m = ModelBuilder()
    units, rank, memory, n_in, s_state, s_wt = 3, 4, 2, 8, 1e-6, 1e-4
    n_filter = units * rank
    x = m.tensor("x", [1, n_in], "int8", 0.05, 0)
    wf = m.tensor("w_feature", [n_filter, n_in], "int8", 0.01, 0, data=rng.integers(-127, 128, (n_filter, n_in)))
    wt = m.tensor("w_time", [n_filter, memory], "int16", s_wt, 0, data=32767 * rng.choice([-1, 1], (n_filter, memory)))
    b = m.tensor("bias", [units], "int32", float(np.float32(s_state) * np.float32(s_wt)), 0,
                 data=[2**31 - 1, -2**31, 0])
    state = m.tensor("state", [1, n_filter * memory], "int16", s_state, 0, is_variable=True)
    y = m.tensor("y", [1, units], "int8", s_state * s_wt * 2**24, 0)
    m.op("SVDF", [x, wf, wt, b, state], [y], rank=rank, fusedActivationFunction="RELU")
    return Case(m, [x], [y], n=20)


ROUNDING = {"state_rounding": state_rounding_model, "output_rounding": output_rounding_model}
SPECIAL = {**ROUNDING, "int32_wrap": int32_wrap_model}


# name -> (builder kwargs, the goldens it runs against)
CASES = {
    "r1_m1": (dict(memory=1), ("tflite", "tflm")),
    "r2_m4": (dict(n_in=10, units=3, rank=2, memory=4, seed=1), ("tflite", "tflm")),
    "r1_m10_b2": (dict(batch=2, n_in=6, units=5, memory=10, seed=2), ("tflite", "tflm")),
    "r2_m7_b2": (dict(batch=2, n_in=12, units=6, rank=2, memory=7, seed=3), ("tflite", "tflm")),
    "r3_m2_n40": (dict(n_in=40, units=8, rank=3, memory=2, seed=4), ("tflite", "tflm")),
    "zero_points_-128_127": (dict(batch=2, rank=2, memory=3, x_q=(0.04, -128), out_zp=127, seed=5),
                             ("tflite", "tflm")),
    "zero_points_127_-128": (dict(batch=2, units=5, memory=5, x_q=(0.03, 127), out_zp=-128, out_spread=0.5, seed=6),
                             ("tflite", "tflm")),
    "no_bias": (dict(units=6, rank=2, memory=6, bias=False, seed=7), ("tflite",)),
    "no_bias_b2_m1": (dict(batch=2, units=3, memory=1, bias=False, seed=8), ("tflite",)),
    # LiteRT refuses NONE (its Eval wants RELU); TFLite Micro ignores the activation, as LiteRT does RELU
    "activation_none": (dict(batch=2, rank=2, memory=3, activation="NONE", seed=9), ("tflm",)),
}
WHY_NOT = {
    "tflm": "TFLite Micro's integer SVDF needs a bias (its Prepare reads the bias scale; without one it crashes)",
    "tflite": "LiteRT's integer SVDF runs only with a fused RELU (its Eval refuses NONE)",
}
GOLDEN_CASES = [(name, golden) for name in CASES for golden in ("tflite", "tflm")]


def case(name: str) -> Case:
    return SPECIAL[name]() if name in SPECIAL else svdf_model(**CASES[name][0])


@pytest.mark.parametrize("name,golden", GOLDEN_CASES)
def test_svdf_matches_golden(tmp_path, name, golden):
    if golden not in CASES[name][1]:
        pytest.skip(WHY_NOT[golden])
    if "tflite" in CASES[name][1]:
        check_case(case(name), tmp_path, goldens=(golden,), min_distinct=8)
        return
    c = case(name)  # one LiteRT refuses: check_case would load it with LiteRT's semantics for its input shapes
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    result = compare(path, case_sets(c, load_tflite(path, semantics=golden)), golden)
    assert np.unique(result).size >= 8


@pytest.mark.parametrize("name", sorted(ROUNDING))
@pytest.mark.parametrize("golden,other", [("tflite", "tflm"), ("tflm", "tflite")])
def test_svdf_multipliers_follow_each_golden(tmp_path, name, golden, other):
    """Each golden's multipliers, and only they, give its codes: with the other's the output moves by one."""
    c = case(name)
    check_case(c, tmp_path, goldens=(golden,), min_distinct=1)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    x = np.full((1, 8 if name == "state_rounding" else 6), 127, np.int8)
    (gold,), _ = run_golden_layers(path, [x], golden)
    (mine,), (theirs,) = (reference.run(load_tflite(path, semantics=s), [x]).values() for s in (golden, other))
    assert np.array_equal(mine.reshape(-1), gold.reshape(-1))
    assert np.abs(theirs.astype(int) - gold.astype(int).reshape(theirs.shape)).max() == 1


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_svdf_int32_sums_wrap_as_tflites(tmp_path, golden):
    """The reference wraps the int32 sums where they overflow, and equals each golden there."""
    c = case("int32_wrap")
    check_case(c, tmp_path, goldens=(golden,))
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs), semantics=golden)
    op = g.ops[0]
    args = [g.tensors[n].data for n in op.inputs]
    sets = case_sets(c, g)
    exact = []
    for (x,) in sets:  # the unwrapped sums, from the state the step writes
        _, state = SPECS["svdf"].step(op.a, x, *args[1:])
        products = state.astype(np.int64).reshape(4 * 3, 2) * args[2].astype(np.int64)
        exact.append(products.reshape(3, 4 * 2).sum(axis=1) + args[3])
    assert np.abs(np.array(exact)).max() > 2**31  # so the golden equality above needed the wrap


VALID_ATTRS = [
    {"rank": 1, "input_zp": 3, "output_zp": -5, "effective_scale_1_a": 1448436189, "effective_scale_1_b": -2,
     "effective_scale_2_a": 1200733958, "effective_scale_2_b": -15},
    {"rank": 3, "input_zp": -128, "output_zp": 127, "effective_scale_1_a": 1073741824, "effective_scale_1_b": 1,
     "effective_scale_2_a": 0, "effective_scale_2_b": 0},
]

WHERE = "operator 0 (SVDF, output 'y'): "
REFUSALS = {
    "float": (dict(input_dtype="float32", feature_dtype="float32"),
              "float SVDF (float32 input, float32 weights) is not supported; only the integer kernel (int8 input "
              "and weights_feature, int16 weights_time and state)"),
    "hybrid": (dict(input_dtype="float32"),
               "hybrid SVDF (float32 input, int8 weights) is not supported; only the integer kernel (int8 input "
               "and weights_feature, int16 weights_time and state)"),
    "relu6": (dict(activation="RELU6"), "fused activation RELU6 is not supported; the integer SVDF takes NONE or RELU"),
    "none_litert": (dict(activation="NONE"),
                    "fused activation NONE: LiteRT's integer SVDF runs only with RELU (load it with --semantics tflm)"),
    "int8_time_weights": (dict(time_dtype="int8"),
                          "weights_time 'w_time' (int8[4, 4]) must be a constant int16 matrix (the int8 weights_time "
                          "variant is not supported)"),
    "int8_state": (dict(state_dtype="int8"),
                   "the activation state 'state' is int8; the integer SVDF keeps it in int16 (the int8 state variant "
                   "is not supported)"),
    "state_with_data": (dict(state_data=True),
                        "the activation state 'state' holds data; TFLite resets a state tensor when it allocates"),
    "per_channel": (dict(per_channel=True),
                    "weights_feature 'w_feature' must be quantized per tensor with zero point 0 (the integer SVDF "
                    "reads one scale)"),
    "feature_zero_point": (dict(feature_zp=2),
                           "weights_feature 'w_feature' must be quantized per tensor with zero point 0 (the integer "
                           "SVDF reads one scale)"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_svdf_refusals(tmp_path, name):
    kwargs, message = REFUSALS[name]
    c = svdf_model(**kwargs)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    with pytest.raises(DmxError) as e:
        load_tflite(path)
    assert str(e.value) == f"{path}: {WHERE}{message}"


def test_svdf_state_zero_point_is_refused(tmp_path):
    """LiteRT's kernel assumes a symmetric state (TFLite Micro would subtract the zero point): the reader's
    int16 rule refuses any other zero point before the mapping runs."""
    c = svdf_model(state_zp=3)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    with pytest.raises(DmxError) as e:
        load_tflite(path)
    assert str(e.value) == f"{path}: operator 0 (SVDF): tensor 'state' (int16) has zero point 3; it must be 0"


def _svdf_file(tmp_path, rank: int, **kw):
    """A model whose SVDF options say `rank` (the builder's shapes are those of rank 2)."""
    c = svdf_model(units=3, rank=2, **kw)
    c.m.sg.operators[0].builtinOptions.rank = rank
    return save(c.m, tmp_path, c.inputs, c.outputs)


@pytest.mark.parametrize("rank,message", [(4, "rank 4 must be at least 1 and divide the 6 filters of 'w_feature'"),
                                          (0, "rank 0 must be at least 1 and divide the 6 filters of 'w_feature'")])
def test_svdf_rank_must_divide_the_filters(tmp_path, rank, message):
    path = _svdf_file(tmp_path, rank)
    with pytest.raises(DmxError) as e:
        load_tflite(path)
    assert str(e.value) == f"{path}: {WHERE}{message}"


def test_svdf_tflm_refusals(tmp_path):
    """TFLite Micro's Prepare reads the bias scale (no bias: it crashes) and checks it against the state's
    times the time weights'; with --semantics tflm dmxgen refuses both, which LiteRT runs."""
    for kwargs, message in ((dict(bias=False), "TFLite Micro's integer SVDF needs a bias (its Prepare reads the "
                                               "bias scale)"),
                            (dict(bias_scale=0.5), "bias 'bias' has scale 0.5; TFLite Micro's SVDF needs the state "
                                                   "scale times the weights_time scale")):
        c = svdf_model(**kwargs)
        path = save(c.m, tmp_path, c.inputs, c.outputs)
        assert load_tflite(path).ops[0].kind == "svdf"
        with pytest.raises(DmxError) as e:
            load_tflite(path, semantics="tflm")
        assert str(e.value).startswith(f"{path}: {WHERE}{message}")


def test_svdf_state_starts_from_zero(tmp_path):
    """The state tensor becomes a constant holding what TFLite resets it to: zeros, int16."""
    c = case("r2_m7_b2")
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    state = g.tensors[g.ops[0].inputs[4]]
    assert state.dtype == "int16" and state.shape == (2, 84) and not np.any(state.data)
    assert SPECS["svdf"].state_inputs == (4,)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_svdf_verifies_through_the_cli(tmp_path, golden):
    """`dmxgen verify` runs the reference against each golden: exit 0, bit-exact."""
    c = case("r2_m4")
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    r = CliRunner().invoke(main, ["verify", str(path), "--golden", golden, "--json"], catch_exceptions=False)
    assert r.exit_code == 0 and json.loads(r.output)["bit_exact"], r.output


TARGET_CASES = [name for name, (_, goldens) in CASES.items() if "tflite" in goldens] + sorted(SPECIAL)
TFLM_CASES = [name for name, (_, goldens) in CASES.items() if goldens == ("tflite", "tflm")] + sorted(SPECIAL)


@pytest.mark.parametrize("target", targets("svdf"))
def test_svdf_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in TARGET_CASES}, tflm=TFLM_CASES)


def test_svdf_state_is_a_persistent_region_of_the_plan(tmp_path):
    """The state lives for the whole run and after it: no other buffer of the arena shares its bytes."""
    c = kws_svdf_model()
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    plan = plan_memory(g, {})
    states = plan.state_buffers
    assert [b.tensors for b in states] == [[g.ops[0].inputs[4]], [g.ops[1].inputs[4]]]
    assert all(b.start == -1 and b.end == len(g.ops) for b in states)
    others = [b for b in plan.arena_buffers if not b.persistent]
    assert others and all(s.offset + s.size <= b.offset or b.offset + b.size <= s.offset
                          for s in states for b in others + [t for t in states if t is not s])


def _sequence_reference(graph, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs of invoking the one-SVDF graph on each frame in turn, the state carried between them."""
    op = graph.ops[0]
    args = [graph.tensors[n].data if n else None for n in op.inputs]
    state, outs = args[4], []
    for x in frames:
        y, state = SPECS["svdf"].step(op.a, x, args[1], args[2], args[3], state)
        outs.append(y.astype(np.int8))
    return outs


@pytest.mark.parametrize("golden,name", [("tflite", "r2_m4"), ("tflite", "r1_m10_b2"), ("tflm", "zero_points_-128_127"),
                                         ("tflm", "r2_m7_b2")])
def test_svdf_state_is_kept_across_runs_and_reset(tmp_path, golden, name):
    """Several dmx_model_run calls without a reset are several invokes of one interpreter (each golden keeps
    its variable tensor between invokes); the harness's reset before each vector makes each one start again."""
    c = case(name)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    g = load_tflite(path, semantics=golden)
    shape = g.tensors[g.inputs[0]].shape
    rng = np.random.default_rng(11)
    memory = g.tensors[g.ops[0].inputs[2]].shape[1]
    frames = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(memory + 3)]  # the oldest ones leave
    want = _sequence_reference(g, frames)
    if golden == "tflite":
        from ai_edge_litert import interpreter as litert

        it = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        gold = []
        for x in frames:
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            gold.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    else:
        it = _load_tflm(path)
        gold = []
        for x in frames:
            it.set_input(x, 0)
            it.invoke()
            gold.append(it.get_output(0).copy())
    assert all(np.array_equal(a, b.reshape(a.shape)) for a, b in zip(want, gold))
    out = tmp_path / "out"
    manifest = export(g, out, targets=("c",), n_vectors=1)
    inputs, outputs = manifest_io(manifest, "input"), manifest_io(manifest, "output")
    work = tmp_path / "build"
    work.mkdir()
    kept = host.run(host.build(out, work, extra=("-DDMX_HOST_KEEP_STATE",)), [[x] for x in frames], inputs, outputs,
                    work, dump=False)
    assert all(np.array_equal(got[0].reshape(-1), w.reshape(-1)) for got, w in zip(kept.outputs, want))
    reset = host.run(host.build(out, work), [[x] for x in frames], inputs, outputs, work, dump=False)
    from_reset = [reference.run(g, [x])[g.outputs[0]] for x in frames]
    assert all(np.array_equal(got[0].reshape(-1), w.reshape(-1)) for got, w in zip(reset.outputs, from_reset))
    assert any(not np.array_equal(a, b) for a, b in zip(from_reset[1:], want[1:]))  # the state matters


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="HLS csim needs g++, make")
@pytest.mark.parametrize("name,interface", [("r2_m4", "array"), ("r1_m10_b2", "stream")])
def test_svdf_hls_state_is_kept_across_calls_and_reset(tmp_path, name, interface):
    """dmx_top keeps the activation state across calls: the frames without reset_state are the invokes of one
    interpreter (Svdf.step carried over them), and a call with reset_state starts the sequence again."""
    c = case(name)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    shape = g.tensors[g.inputs[0]].shape
    rng = np.random.default_rng(11)
    memory = g.tensors[g.ops[0].inputs[2]].shape[1]
    frames = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(memory + 3)]  # the oldest ones leave
    want = _sequence_reference(g, frames) + _sequence_reference(g, frames[:3])
    from_reset = [reference.run(g, [x])[g.outputs[0]] for x in frames]
    assert any(not np.array_equal(a, b) for a, b in zip(from_reset[1:], want[1:]))  # the state matters
    resets = [True] + [False] * (len(frames) - 1) + [True, False, False]
    top = run_hls_sequence(tmp_path, g, [[x] for x in frames + frames[:3]], [[w] for w in want], resets, interface)
    assert "bool reset_state" in top


def test_svdf_state_shared_by_two_layers_is_refused(tmp_path):
    """Two SVDFs reading one state tensor would share its bytes in the C model: one line, no folder."""
    from dmxgen.graph import Op, Tensor

    c = svdf_model(n_in=4, units=4, seed=12)
    g = load_tflite(save(c.m, tmp_path, c.inputs, c.outputs))
    first = g.ops[0]
    y = g.tensors[first.outputs[0]]
    y2 = g.add_tensor(Tensor("y2", y.shape, "int8", y.quant))
    g.ops.append(Op("svdf_1", "svdf", [first.outputs[0]] + first.inputs[1:], [y2.name], dict(first.attrs)))
    g.outputs = [y2.name]
    with pytest.raises(DmxError) as e:
        export(g, tmp_path / "out", targets=("c",), n_vectors=1)
    assert str(e.value) == (f"layer 'svdf_0' (svdf): state tensor {first.inputs[4]!r} is read by another input or "
                            "layer; the C model keeps one state per SVDF")
    assert not (tmp_path / "out").exists()


def kws_svdf_model(seed=30) -> Case:
    """Keyword spotting on SVDFs, as TFLite Micro's micro_speech SVDF variant: one frame of 40 features per call
    -> SVDF(32 units, rank 2, memory 8) -> SVDF(16 units, rank 1, memory 6) -> FULLY_CONNECTED to 4 classes
    -> SOFTMAX; the two states carry the past frames."""
    rng = np.random.default_rng(seed)
    m = ModelBuilder()
    x = m.tensor("features", [1, 40], "int8", 0.1, -20)

    def svdf(name, inp, s_in, n_in, units, rank, memory, s_out):
        n_filter = units * rank
        s_wf, s_wt = 0.01, 2.0**-12
        s_state = s_in * s_wf * np.sqrt(n_in) * 74 * 74 / TYPICAL_STATE
        wf = m.tensor(f"{name}_wf", [n_filter, n_in], "int8", s_wf, 0, data=rng.integers(-127, 128, (n_filter, n_in)))
        wt = m.tensor(f"{name}_wt", [n_filter, memory], "int16", s_wt, 0,
                      data=rng.integers(-2000, 2001, (n_filter, memory)))
        b = m.tensor(f"{name}_b", [units], "int32", s_state * s_wt, 0, data=rng.integers(-10**6, 10**6, units))
        st = m.tensor(f"{name}_state", [1, n_filter * memory], "int16", s_state, 0, is_variable=True)
        y = m.tensor(name, [1, units], "int8", s_out, -128)  # a RELU output: the zero point at the bottom
        m.op("SVDF", [inp, wf, wt, b, st], [y], rank=rank, fusedActivationFunction="RELU")
        return y

    h1 = svdf("svdf_1", x, 0.1, 40, 32, 2, 8, 0.25)
    h2 = svdf("svdf_2", h1, 0.25, 32, 16, 1, 6, 0.25)
    w = m.tensor("fc_w", [4, 16], "int8", 0.001, 0, data=rng.integers(-127, 128, (4, 16)))
    b = m.tensor("fc_b", [4], "int32", 0.25 * 0.001, 0, data=rng.integers(-2000, 2001, 4))
    logits = m.tensor("logits", [1, 4], "int8", 0.02, 3)
    m.op("FULLY_CONNECTED", [h2, w, b], [logits])
    probs = m.tensor("probs", [1, 4], "int8", 1 / 256, -128)
    m.op("SOFTMAX", [logits], [probs], beta=1.0)
    return Case(m, [x], [probs])


@pytest.fixture(scope="module")
def kws_folder(tmp_path_factory):
    """The keyword-spotting SVDF model exported by `dmxgen export` (3 random vectors), C and HLS (AXI streams)."""
    tmp = tmp_path_factory.mktemp("kws_svdf")
    c = kws_svdf_model()
    path = save(c.m, tmp, c.inputs, c.outputs, name="kws_svdf")
    out = tmp / "out"
    r = CliRunner().invoke(main, ["export", str(path), "-o", str(out), "--vectors", "3", "--target", "c,hls",
                                  "--hls-interface", "stream"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_kws_svdf_exports_and_verifies_bit_exact(kws_folder):
    """`dmxgen verify` on the folder: the C on the host (sanitized) against the reference, and the reference
    against LiteRT, every vector to the bit."""
    r = CliRunner().invoke(main, ["verify", str(kws_folder), "--json", "--inputs", "3"], catch_exceptions=False)
    result = json.loads(r.output)
    assert r.exit_code == 0 and result["bit_exact"] and result["inputs"] == 3, r.output
    assert result["source_vs_golden"]["golden"] == "tflite" and result["source_vs_golden"]["bit_exact"], r.output
    manifest = json.loads((kws_folder / "manifest.json").read_text())
    assert [layer["op"] for layer in manifest["layers"]] == ["svdf", "svdf", "fully_connected", "softmax"]
    assert "dmx_model_reset_state" in (kws_folder / "model.h").read_text()


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="HLS csim needs g++, make")
def test_kws_svdf_hls_csim_is_bit_exact(kws_folder):
    """`make -C hls csim` (g++ with ASan and UBSan) on the stream interface: every stored vector to the bit
    (each call from the reset state, as each stored vector is)."""
    r = run_csim(kws_folder, sanitize=True)
    assert r.returncode == 0 and "PASS: 3 vectors, 12 output values bit-exact" in r.stdout, r.stdout + r.stderr


@pytest.mark.firmware
@pytest.mark.skipif(bool(firmware.missing_tools()), reason="needs the firmware tools (tools/setup.sh)")
def test_kws_svdf_passes_on_the_m55(kws_folder, tmp_path):
    """The firmware on the emulated Cortex-M55 gives expected.h (the reference's output) to the bit."""
    r = firmware.run(kws_folder, build_dir=tmp_path / "build", timeout=300)
    assert r.passed and r.exit_status == 0, r.log[-2000:]
    manifest = json.loads((kws_folder / "manifest.json").read_text())
    x = np.load(kws_folder / manifest["test_vectors"]["inputs"])[manifest["sample"]["index"]]
    graph = load_tflite(kws_folder.parent / "kws_svdf.tflite")
    (want,) = reference.run(graph, [x]).values()
    assert np.array_equal(np.array(r.outputs, np.int8), want.reshape(-1))
