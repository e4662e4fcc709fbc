"""TFLite's int16 TANH as `tanh16` (dmxgen/ops/tanh16.py, frontends/tflite_ops/activations16.py): all
65536 codes over input scales that take each path of the Prepare, against LiteRT's reference kernels
and TFLite Micro (one arithmetic and one Prepare), then on host C and the M55; the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.graph import Graph, Op, Tensor
from dmxgen.testing.tflite_builder import ModelBuilder

from ._act16 import ALL_CODES, OUT, SCALES, case, model, target_cases
from ._harness import check_case, save
from ._targets import check_targets, targets16

VALID_ATTRS = [{"input_multiplier": 0, "input_left_shift": 1}, {"input_multiplier": 16777, "input_left_shift": 12}]


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(SCALES))
def test_tanh16_matches_the_runtimes(tmp_path, name, golden):
    out = check_case(case("TANH", name), tmp_path, goldens=(golden,), min_distinct=3)
    assert out.dtype == np.int16 and out.min() < 0 < out.max()


@pytest.mark.parametrize("name, multiplier, shift", [("pot", 0, 0), ("pot_shift1", 0, 1), ("pot_fine", 24576, 16),
                                                     ("near_pot", 0, 0), ("third", 16777, 12), ("wide", 36864, 0)])
def test_the_prepare_paths(tmp_path, name, multiplier, shift):
    """The OpData each scale gives (TANH's power-of-two path also takes shift 1, LOGISTIC's does not)."""
    m, x, y = model("TANH", SCALES[name])
    op = load_tflite(save(m, tmp_path, [x], [y])).ops[0]
    assert (op.kind, op.attrs) == ("tanh16", {"input_multiplier": multiplier, "input_left_shift": shift})


@pytest.mark.parametrize("target", targets16("tanh16"))
def test_tanh16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, target_cases("TANH", target))


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
@pytest.mark.parametrize("s_out, message", [
    (1 / 16384, r"output scale 6\.10352e-05; (LiteRT|TFLite Micro)'s int16 TANH writes 1/32768 \(zero point 0\)"),
    (OUT * 1.01, r"output scale 3\.08228e-05; (LiteRT|TFLite Micro)'s int16 TANH writes 1/32768"),
])
def test_output_grid_refusals_are_the_runtimes(tmp_path, semantics, s_out, message):
    """Both runtimes' TanhPrepare: CheckedLog2(output scale) == -15, so 1/32768 within its tolerance."""
    m, x, y = model("TANH", 0.001, s_out)
    path = save(m, tmp_path, [x], [y])
    with pytest.raises(DmxError, match=rf"operator 0 \(TANH, output 'y'\): {message}"):
        load_tflite(path, semantics=semantics)
    with pytest.raises(DmxError):
        run_golden(path, [ALL_CODES], semantics)


def test_an_output_scale_within_the_tolerance_loads(tmp_path):
    m, x, y = model("TANH", 0.001, OUT * 1.0003)
    graph = load_tflite(save(m, tmp_path, [x], [y]))
    assert graph.ops[0].kind == "tanh16"


def test_a_scale_that_overflows_int32_is_refused(tmp_path):
    m, x, y = model("TANH", 6.0)
    with pytest.raises(DmxError, match=r"\(TANH, output 'y'\): input scale 6 is too large: TFLite's int16 TANH "
                                       r"rescales the codes by 73728 in int32, which overflows"):
        load_tflite(save(m, tmp_path, [x], [y]))


def test_a_per_channel_input_is_refused(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 2], "int16", scale=[0.001, 0.002], zero_point=0, axis=1)
    y = m.tensor("y", [1, 2], "int16", scale=OUT, zero_point=0)
    m.op("TANH", [x], [y])
    with pytest.raises(DmxError, match=r"\(TANH, output 'y'\): input tensor 'x' has 2 scales; an activation is "
                                       r"quantized per tensor"):
        load_tflite(save(m, tmp_path, [x], [y]))


@pytest.mark.parametrize("kind", ["logistic16", "tanh16"])
@pytest.mark.parametrize("attrs, message", [
    ({"input_multiplier": 65536, "input_left_shift": 0}, r"the rescaled int16 codes overflow int32"),
    ({"input_multiplier": 0, "input_left_shift": 15}, r"the rescaled int16 codes overflow int32"),  # 3 << 15
    ({"input_multiplier": -1, "input_left_shift": 3}, r"both must be at least 0, the shift at most 31"),
])
def test_the_spec_refuses_a_rescale_beyond_int32(kind, attrs, message):
    """The kernels compute code * multiplier + rounding in int32, as TFLite's: a graph that would wrap is refused."""
    g = Graph({"x": Tensor("x", (1, 4), "int16"), "y": Tensor("y", (1, 4), "int16")},
              [Op("o", kind, ["x"], ["y"], attrs)], ["x"], ["y"])
    with pytest.raises(DmxError, match=message):
        g.validate()
    Graph(g.tensors, [Op("o", kind, ["x"], ["y"], {"input_multiplier": 65535, "input_left_shift": 0})],
          ["x"], ["y"]).validate()
