"""TFLite's int8 elementwise activations, loaded as `lut` ops whose table is the kernel's own
algorithm run on the 256 input codes (dmxgen/ops/_int8_tables.py, frontends/tflite_ops/tables.py).

Every case feeds all 256 codes (and the harness's random and extreme sets) to the reference and
to LiteRT's reference kernels and TFLite Micro, over scales and zero points including the ends of
the int8 range; the cases where the two runtimes compute differently (LOGISTIC's input radius,
TANH's fixed output grid in TFLM, RELU6 without requantization in TFLM, ELU's expm1f) are run
against both, each under its own semantics. LiteRT's reference resolver has no ELU: its
builtin one runs the same Prepare (one float table) and lookup, so ELU's LiteRT golden is that.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, case_sets, check_case, save
from ._targets import check_targets, targets

ALL_CODES = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16)
BOTH, LITERT = ("tflite", "tflm"), ("tflite",)

# name -> (operator, input (scale, zp), output (scale, zp), goldens)
CASES = {
    "logistic": ("LOGISTIC", (0.1, 0), (1 / 256, -128), BOTH),
    "logistic_zp_low": ("LOGISTIC", (0.0625, -128), (1 / 256, -128), BOTH),
    "logistic_zp_high": ("LOGISTIC", (0.003, 127), (1 / 256, -128), BOTH),
    "logistic_wide": ("LOGISTIC", (4.187243938446045, -99), (1 / 256, -128), BOTH),  # TFLM's radius saturates
    "logistic_out_zp0": ("LOGISTIC", (0.05, 3), (1 / 256, 0), LITERT),  # LiteRT reads the output zero point
    "tanh": ("TANH", (0.05, -20), (1 / 128, 0), BOTH),
    "tanh_out_grid": ("TANH", (0.03, 10), (0.01, -5), BOTH),  # TFLM writes the 1/128 grid regardless
    "tanh_wide": ("TANH", (2.5, 127), (1 / 128, 0), BOTH),
    "tanh_fine": ("TANH", (0.002, -128), (1 / 128, 0), BOTH),
    "hard_swish": ("HARD_SWISH", (0.05, -10), (0.03, -100), BOTH),  # reluish exponent > 0
    "hard_swish_pot0": ("HARD_SWISH", (0.008, 0), (0.005, -128), BOTH),  # reluish exponent 0
    "hard_swish_fine": ("HARD_SWISH", (0.0016528122359886765, -11), (0.964306116104126, 36), BOTH),  # int16 RDBPOT
    "hard_swish_zp_high": ("HARD_SWISH", (0.2, 127), (0.02, 0), BOTH),  # x <= 0 only
    "relu": ("RELU", (0.05, -10), (0.03, -128), BOTH),
    "relu_zp_low": ("RELU", (0.02, -128), (0.015, 3), BOTH),  # x >= 0 only, saturating
    "relu_same_grid": ("RELU", (0.1, -5), (0.1, -5), BOTH),
    "relu6": ("RELU6", (0.05, -128), (0.05, -128), BOTH),
    "relu6_requant": ("RELU6", (0.1, 0), (0.03, -100), BOTH),  # TFLM clamps the input codes, LiteRT requantizes
    "relu6_coarse_out": ("RELU6", (0.01, 20), (0.5, -128), BOTH),
    "relu_n1_to_1": ("RELU_N1_TO_1", (0.01, 0), (1 / 128, 0), LITERT),
    "relu_n1_to_1_requant": ("RELU_N1_TO_1", (0.02, -50), (0.005, 10), LITERT),
    "relu_0_to_1": ("RELU_0_TO_1", (0.01, -100), (1 / 255, -128), LITERT),
    "elu": ("ELU", (0.05, 20), (0.03, 30), BOTH),
    "elu_tiny": ("ELU", (3.3264027479162905e-06, 123), (1.710523065412417e-06, -61), BOTH),  # expm1f != expf - 1
    "abs_same_grid": ("ABS", (0.05, 10), (0.05, 10), BOTH),
    "abs": ("ABS", (0.05, -128), (0.02, -128), BOTH),
    "abs_zp_high": ("ABS", (0.1, 127), (0.3, -5), BOTH),
    "rsqrt": ("RSQRT", (0.01, -128), (0.05, -128), BOTH),
    "rsqrt_zp": ("RSQRT", (0.5, -20), (0.02, 5), BOTH),  # codes below the zero point are TFLite's error
    "neg": ("NEG", (0.1, 0), (0.1, 0), LITERT),
}
TFLM = [name for name, (*_, goldens) in CASES.items() if "tflm" in goldens]


def model(opname: str, q_in, q_out, shape=(1, 16, 16), in_dtype="int8", out_dtype="int8"):
    m = ModelBuilder()
    x = m.tensor("x", shape, in_dtype, scale=q_in[0], zero_point=q_in[1])
    y = m.tensor("y", shape, out_dtype, scale=q_out[0], zero_point=q_out[1])
    m.op(opname, [x], [y])
    return m, x, y


def case(name: str) -> Case:
    opname, q_in, q_out, _ = CASES[name]
    if opname == "RSQRT":  # only the codes at or above the input zero point: TFLite fails the others
        codes = np.arange(q_in[1], 128, dtype=np.int8)
        m, x, y = model(opname, q_in, q_out, shape=(1, codes.size))
        rng = np.random.default_rng(5)
        return Case(m, [x], [y], n=0, extremes=False, extra=[[codes.reshape(1, -1)], [rng.permutation(codes)[None]]])
    m, x, y = model(opname, q_in, q_out)
    return Case(m, [x], [y], n=2, seed=7, extra=[[ALL_CODES], [ALL_CODES[:, ::-1, ::-1].copy()]])


def _litert_builtin(path, sets) -> list[np.ndarray]:
    """LiteRT with its builtin (not reference) kernels: for ELU, which BUILTIN_REF lacks."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    outs = []
    for (x,) in sets:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    return outs


@pytest.mark.parametrize("name", list(CASES))
def test_table_matches_litert(tmp_path, name):
    if CASES[name][0] != "ELU":
        check_case(case(name), tmp_path, goldens=("tflite",))
        return
    c = case(name)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    graph = load_tflite(path)
    sets = case_sets(c, graph)
    mine = [reference.run(graph, s)[graph.outputs[0]] for s in sets]
    for k, (a, b) in enumerate(zip(mine, _litert_builtin(path, sets))):
        assert a.tobytes() == b.tobytes(), f"{name}, input set {k}: {np.flatnonzero(a != b)[:5]} differ"
    assert np.unique(np.stack(mine)).size >= 2


@pytest.mark.parametrize("name", TFLM)
def test_table_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("name", ["logistic_wide", "tanh_out_grid", "relu6_requant", "elu_tiny"])
def test_the_semantics_differ_where_the_runtimes_do(tmp_path, name):
    """The cases that hold the semantics split: each runtime's table is not the other's."""
    c = case(name)
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    tables = [np.asarray(load_tflite(path, semantics=s).ops[0].attrs["table"]) for s in ("tflite", "tflm")]
    assert (tables[0] != tables[1]).any()


@pytest.mark.parametrize("target", targets("lut"))
def test_tables_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES}, tflm=TFLM)


def _refused_by(path, golden: str) -> bool:
    try:
        run_golden(path, [np.zeros((1, 16, 16), np.int8)], golden)
    except DmxError:
        return True
    return False


@pytest.mark.parametrize("opname, q_in, q_out, semantics, message", [
    ("LOGISTIC", (0.1, 0), (0.01, -128), "tflite", r"output scale 0\.01; LiteRT's int8 LOGISTIC requires 1/256"),
    ("LOGISTIC", (0.1, 0), (1 / 256, 0), "tflm",
     r"output zero point 0; TFLite Micro's int8 LOGISTIC writes -128"),
    ("HARD_SWISH", (1.0, 0), (0.005, 0), "tflite", r"output scale 0\.005 is not above input scale / 128"),
    ("HARD_SWISH", (1.0, 0), (0.005, 0), "tflm", r"output scale 0\.005 is not above input scale / 128"),
    ("NEG", (0.1, 0), (0.1, 0), "tflm", r"TFLite Micro has no int8 NEG kernel"),
    ("RELU_N1_TO_1", (0.01, 0), (1 / 128, 0), "tflm", r"TFLite Micro has no int8 RELU_N1_TO_1 kernel"),
])
def test_refusals_are_the_runtimes(tmp_path, opname, q_in, q_out, semantics, message):
    """What the runtime's Prepare (or resolver) refuses, dmxgen refuses in one line naming the layer."""
    m, x, y = model(opname, q_in, q_out)
    path = save(m, tmp_path, [x], [y])
    with pytest.raises(DmxError, match=rf"operator 0 \({opname}, output 'y'\): {message}"):
        load_tflite(path, semantics=semantics)
    assert _refused_by(path, semantics)


@pytest.mark.parametrize("opname", ["LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "ABS", "RSQRT", "ELU"])
@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_other_dtypes_are_refused(tmp_path, opname, dtype):
    if dtype == "int16" and opname in ("LOGISTIC", "TANH"):
        pytest.skip("int16 LOGISTIC and TANH are the logistic16 / tanh16 kinds (tests/ops/test_logistic16.py)")
    q = (1 / 32768, 0) if dtype == "int16" else (None, None)
    m, x, y = model(opname, q, q, in_dtype=dtype, out_dtype=dtype)
    with pytest.raises(DmxError, match=rf"\({opname}, output 'y'\): tensor 'x' is {dtype}; only int8 is supported"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_mixed_dtypes_are_refused(tmp_path):
    m, x, y = model("TANH", (0.05, 0), (1 / 32768, 0), out_dtype="int16")
    with pytest.raises(DmxError, match=r"tensor 'y' is int16; only int8 is supported"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_tflm_logistic_writes_the_1_256_grid_whatever_the_output_scale(tmp_path):
    """TFLite Micro's LOGISTIC Prepare checks the output zero point only; LiteRT's refuses the scale."""
    m, x, y = model("LOGISTIC", (0.05, 7), (0.01, -128))
    path = save(m, tmp_path, [x], [y])
    with pytest.raises(DmxError, match=r"output scale 0\.01; LiteRT's int8 LOGISTIC requires 1/256"):
        load_tflite(path)
    graph = load_tflite(path, semantics="tflm")
    mine = reference.run(graph, [ALL_CODES])[graph.outputs[0]]
    assert mine.tobytes() == run_golden(path, [ALL_CODES], "tflm")[0].tobytes()
    assert np.unique(mine).size > 100


def test_a_per_channel_activation_is_refused(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 2], "int8", scale=[0.1, 0.2], zero_point=0, axis=1)
    y = m.tensor("y", [1, 2], "int8", scale=1 / 128, zero_point=0)
    m.op("TANH", [x], [y])
    with pytest.raises(DmxError, match=r"\(TANH, output 'y'\): input tensor 'x' has 2 scales; an activation is "
                                       r"quantized per tensor"):
        load_tflite(save(m, tmp_path, [x], [y]))


EXTREME_SCALES = (1e-38, 1e-6, 1.0, 1e6, 3e38)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("opname", sorted({op for op, *_ in CASES.values()}))
def test_extreme_scales_load_or_are_refused_in_one_line(tmp_path, opname):
    """Scales at the ends of float32 (quotients overflowing, bounds beyond int32): a table, or one
    DmxError naming the layer; never a numpy warning or another exception."""
    for s_in, s_out, semantics in itertools.product(EXTREME_SCALES, EXTREME_SCALES, ("tflite", "tflm")):
        m, x, y = model(opname, (s_in, 127), (1 / 256 if opname == "LOGISTIC" else s_out, -128), shape=(1, 4))
        path = save(m, tmp_path, [x], [y])
        try:
            table = load_tflite(path, semantics=semantics).ops[0].attrs["table"]
        except DmxError as e:
            assert str(e).startswith(f"{path}: operator 0 ({opname}, output 'y'): ") and "\n" not in str(e)
        else:
            assert np.asarray(table).dtype == np.int8 and np.size(table) == 256
