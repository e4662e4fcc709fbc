"""TFLite's int16 SOFTMAX as `softmax16` (dmxgen/ops/softmax16.py, frontends/tflite_ops/activations16.py):
input scales and betas that take each kind of multiplier, rows of every spread, against LiteRT's
reference kernels and TFLite Micro, then on host C and the M55. LiteRT fills its exp and reciprocal
tables in double and TFLite Micro in float: the `split` rows hit the reciprocal entries that differ."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.ops.softmax16 import tables
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets16

VALID_ATTRS = [{"input_multiplier": 1759191844, "input_shift": 3},
               {"input_multiplier": 1801412359, "input_shift": -7, "tables": "float"}]
OUT = 1 / 32768

# name -> (input scale, beta, shape)
CASES = {
    "milli": (0.001, 1.0, (6, 10)),
    "pot": (1 / 4096, 1.0, (4, 64)),
    "beta2": (0.0003, 2.0, (3, 5)),
    "half_beta": (0.01, 0.5, (2, 100)),
    "long_rows": (3e-5, 1.0, (2, 1000)),
    "rank4": (0.002, 1.0, (1, 3, 4, 8)),
    "tiny_scale": (1e-6, 1.0, (4, 16)),  # shift -7: most differences round to 0
    "wrapping": (0.1, 100.0, (3, 12)),  # left shift 16: (x - max) << 16 wraps int32 in both runtimes
    "float_product": (0.0007, 1.3, (4, 12)),  # LiteRT's float scale * beta is not TFLite Micro's double one
}
# rows [0, d]: the sums whose reciprocal reads the two entries where LiteRT's and TFLite Micro's tables differ
SPLIT_ROWS = np.stack([np.zeros(901), np.arange(-1300, -399)], axis=1).astype(np.int16)


def model(s_in: float, beta: float, shape, s_out: float = OUT, out_dtype: str = "int16"):
    m = ModelBuilder()
    x = m.tensor("x", list(shape), "int16", scale=s_in, zero_point=0)
    y = m.tensor("y", list(shape), out_dtype, scale=s_out, zero_point=0)
    m.op("SOFTMAX", [x], [y], beta=beta)
    return m, x, y


def case(name: str) -> Case:
    """Seeded random rows, the extremes, then rows spread over +-300 codes and one row at the maximum."""
    s_in, beta, shape = CASES[name]
    m, x, y = model(s_in, beta, shape)
    rng = np.random.default_rng(sum(map(ord, name)))
    narrow = rng.integers(-300, 301, size=shape).astype(np.int16)
    peaked = np.full(shape, -32768, np.int16)
    peaked[..., 0] = 32767
    return Case(m, [x], [y], n=3, seed=11, extra=[[narrow], [peaked]])


def split_case() -> Case:
    m, x, y = model(0.001, 1.0, SPLIT_ROWS.shape)
    return Case(m, [x], [y], n=0, extremes=False, extra=[[SPLIT_ROWS]])


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(CASES))
def test_softmax16_matches_the_runtimes(tmp_path, name, golden):
    out = check_case(case(name), tmp_path, goldens=(golden,), min_distinct=3)
    assert out.dtype == np.int16 and out.min() >= 0


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
def test_the_tables_of_each_runtime(tmp_path, golden):
    """The rows whose reciprocal reads entries 160 and 294: each runtime's golden against its own tables."""
    check_case(split_case(), tmp_path, goldens=(golden,), min_distinct=3)


def test_the_semantics_differ_where_the_runtimes_do(tmp_path):
    assert np.flatnonzero(tables("double")[1] != tables("float")[1]).tolist() == [160, 294]
    assert (tables("double")[0] == tables("float")[0]).all()
    c = split_case()
    path = save(c.m, tmp_path, c.inputs, c.outputs)
    outs = []
    for semantics in ("tflite", "tflm"):
        graph = load_tflite(path, semantics=semantics)
        outs.append(reference.run(graph, [SPLIT_ROWS])[graph.outputs[0]])
    assert (outs[0] != outs[1]).any()


def test_litert_multiplies_scale_and_beta_in_float(tmp_path):
    """LiteRT's input_scale * beta is a float product, TFLite Micro's a double one: the multipliers differ."""
    m, x, y = model(0.0007, 1.3, (2, 4))
    path = save(m, tmp_path, [x], [y])
    litert, tflm = (load_tflite(path, semantics=s).ops[0].attrs for s in ("tflite", "tflm"))
    assert (litert["tables"], tflm["tables"]) == ("double", "float")
    assert litert["input_multiplier"] != tflm["input_multiplier"]
    assert litert["input_shift"] == tflm["input_shift"]


@pytest.mark.parametrize("target", targets16("softmax16"))
def test_softmax16_on_targets(tmp_path, target):
    cases = {name: case(name) for name in CASES} | {"split": split_case()}
    check_targets(tmp_path, target, cases, tflm=["split", "milli"])


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
@pytest.mark.parametrize("s_out", [1 / 16384, OUT * 1.01])
def test_the_output_grid_is_refused_as_the_runtimes_do(tmp_path, semantics, s_out):
    m, x, y = model(0.001, 1.0, (2, 4), s_out=s_out)
    with pytest.raises(DmxError, match=r"operator 0 \(SOFTMAX, output 'y'\): output scale [0-9.e-]+; TFLite's int16 "
                                       r"SOFTMAX writes 1/32768 \(within 0\.1%, zero point 0\)"):
        load_tflite(save(m, tmp_path, [x], [y]), semantics=semantics)


def test_an_output_scale_within_the_tolerance_loads(tmp_path):
    m, x, y = model(0.001, 1.0, (2, 4), s_out=OUT * 1.0005)
    assert load_tflite(save(m, tmp_path, [x], [y])).ops[0].kind == "softmax16"


def test_an_int8_output_is_refused(tmp_path):
    m, x, y = model(0.001, 1.0, (2, 4), s_out=1 / 256, out_dtype="int8")
    with pytest.raises(DmxError, match=r"\(SOFTMAX, output 'y'\): its tensors mix int16 and int8"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_a_huge_input_scale_is_refused(tmp_path):
    m, x, y = model(1000.0, 1e4, (2, 4))
    with pytest.raises(DmxError, match=r"\(SOFTMAX, output 'y'\): input scale 1000 times beta 10000 is too large"):
        load_tflite(save(m, tmp_path, [x], [y]))
