"""TFLite's int16 LOGISTIC as `logistic16` (dmxgen/ops/logistic16.py, frontends/tflite_ops/activations16.py):
all 65536 codes over input scales that take each path of the Prepare, against LiteRT's reference
kernels and TFLite Micro, then on host C and the M55; the output grid each runtime's Prepare wants."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen import reference
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.goldens import run_golden
from dmxgen.ops._lstm_int import tflm_logistic16

from ._act16 import ALL_CODES, OUT, SCALES, case, model, target_cases
from ._harness import check_case, save
from ._targets import check_targets, targets16

VALID_ATTRS = [{"input_multiplier": 0, "input_left_shift": 0}, {"input_multiplier": 25165, "input_left_shift": 11}]


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(SCALES))
def test_logistic16_matches_the_runtimes(tmp_path, name, golden):
    out = check_case(case("LOGISTIC", name), tmp_path, goldens=(golden,), min_distinct=3)
    assert out.dtype == np.int16 and out.min() >= 0


@pytest.mark.parametrize("name, multiplier, shift", [("pot", 0, 0), ("pot_shift1", 24576, 12),
                                                     ("near_pot", 0, 0), ("milli", 25165, 11), ("wide", 36864, 0)])
def test_the_prepare_paths(tmp_path, name, multiplier, shift):
    """The OpData each scale gives (as LiteRT's and TFLite Micro's Prepare): the golden cases cover each path."""
    m, x, y = model("LOGISTIC", SCALES[name])
    op = load_tflite(save(m, tmp_path, [x], [y])).ops[0]
    assert (op.kind, op.attrs) == ("logistic16", {"input_multiplier": multiplier, "input_left_shift": shift})


def test_the_power_of_two_path_is_not_the_general_one():
    """near_pot matches the runtimes only through the power-of-two path: the general multiplier differs."""
    s = np.float32(SCALES["near_pot"]) * 4096.0 * 3.0 * 2**13
    assert (tflm_logistic16(ALL_CODES, 0, 0) != tflm_logistic16(ALL_CODES, int(s), 13)).any()


def test_tflm_takes_an_output_scale_near_1_32768(tmp_path):
    """TFLite Micro checks the output scale by CheckedLog2, LiteRT's SigmoidPrepare by equality."""
    m, x, y = model("LOGISTIC", 0.001, s_out=OUT * 1.0003)
    path = save(m, tmp_path, [x], [y])
    with pytest.raises(DmxError, match=r"\(LOGISTIC, output 'y'\): output scale 3\.05267e-05; LiteRT's int16 "
                                       r"LOGISTIC writes 1/32768 \(zero point 0\)"):
        load_tflite(path)
    with pytest.raises(DmxError):
        run_golden(path, [ALL_CODES], "tflite")
    graph = load_tflite(path, semantics="tflm")
    mine = reference.run(graph, [ALL_CODES])[graph.outputs[0]]
    assert mine.tobytes() == run_golden(path, [ALL_CODES], "tflm")[0].tobytes()
    assert np.unique(mine).size > 1000


@pytest.mark.parametrize("target", targets16("logistic16"))
def test_logistic16_on_targets(tmp_path, target):
    check_targets(tmp_path, target, target_cases("LOGISTIC", target))


@pytest.mark.parametrize("semantics", ["tflite", "tflm"])
@pytest.mark.parametrize("s_in, s_out, message", [
    (0.001, 1 / 16384, r"output scale 6\.10352e-05; (LiteRT|TFLite Micro)'s int16 LOGISTIC writes 1/32768"),
    (6.0, OUT, r"input scale 6 is too large: TFLite's int16 LOGISTIC rescales the codes by 73728 in int32, "
               r"which overflows \(scales below 5\.333 fit\)"),
])
def test_refusals(tmp_path, semantics, s_in, s_out, message):
    m, x, y = model("LOGISTIC", s_in, s_out)
    with pytest.raises(DmxError, match=rf"operator 0 \(LOGISTIC, output 'y'\): {message}"):
        load_tflite(save(m, tmp_path, [x], [y]), semantics=semantics)


def test_mixed_dtypes_are_refused(tmp_path):
    m, x, y = model("LOGISTIC", 0.001, s_out=1 / 256, zp_out=-128, out_dtype="int8")
    with pytest.raises(DmxError, match=r"\(LOGISTIC, output 'y'\): its tensors mix int16 and int8"):
        load_tflite(save(m, tmp_path, [x], [y]))
