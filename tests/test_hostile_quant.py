"""Hostile quantization parameters and float inputs (issue 18, items 1 and 8).

Zero points and output scales that the kernels cannot compute without overflow are refused at
load in one line; NaN and +-inf model inputs quantize as LiteRT does, in the reference, the C
and the HLS testbench alike. Every model is built inside the test.
"""
from __future__ import annotations

import json
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S
from click.testing import CliRunner

from dmxgen.backends.hls_csim import run_csim
from dmxgen.cli import main
from dmxgen.errors import DmxError
from dmxgen.goldens import run_golden
from dmxgen.graph.fixedpoint import MAX_SHIFT, quantize_float, quantize_multiplier
from dmxgen.testing.tflite_builder import ModelBuilder
from tests.conftest import shared_or_skip
from tests.test_cli_errors import assert_one_line_error, run

WEIGHTS = np.random.default_rng(0).integers(-127, 128, (4, 8))
CONV_WEIGHTS = np.random.default_rng(1).integers(-127, 128, (3, 1, 1, 2))


def fc_model(x_zp=0, w_zp=0, out_scale=0.05, x_dtype="int8") -> bytes:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], dtype=x_dtype, scale=0.1, zero_point=x_zp)
    w = m.tensor("w", [4, 8], scale=0.01, zero_point=w_zp, data=WEIGHTS)
    y = m.tensor("y", [1, 4], scale=out_scale, zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, -1], [y])
    return m.build([x], [y])


def conv_model(out_scale: float) -> bytes:
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 2], scale=0.1, zero_point=0)
    w = m.tensor("w", [3, 1, 1, 2], scale=0.01, zero_point=0, data=CONV_WEIGHTS)
    b = m.tensor("b", [3], dtype="int32", scale=0.001, zero_point=0, data=np.zeros(3))
    y = m.tensor("y", [1, 4, 4, 3], scale=out_scale, zero_point=0)
    m.op("CONV_2D", [x, w, b], [y], padding="VALID", strideH=1, strideW=1)
    return m.build([x], [y])


def mul_model(a_zp: int) -> bytes:
    m = ModelBuilder()
    a = m.tensor("a", [1, 8], scale=0.1, zero_point=a_zp)
    b = m.tensor("b", [1, 8], scale=0.1, zero_point=0)
    y = m.tensor("y", [1, 8], scale=0.05, zero_point=0)
    m.op("MUL", [a, b], [y])
    return m.build([a, b], [y])


def quantize_fc_model(zero_point: int, n: int) -> bytes:
    """float x -> QUANTIZE -> FULLY_CONNECTED: the float input edge the C and HLS quantize."""
    m = ModelBuilder()
    x = m.tensor("x", [1, n], dtype="float32")
    q = m.tensor("q", [1, n], scale=0.1, zero_point=zero_point)
    w = m.tensor("w", [4, n], scale=0.01, zero_point=0, data=np.resize(WEIGHTS, (4, n)))
    y = m.tensor("y", [1, 4], scale=0.05, zero_point=0)
    m.op("QUANTIZE", [x], [q])
    m.op("FULLY_CONNECTED", [q, w, -1], [y])
    return m.build([x], [y])


def verify_json(target) -> dict:
    r = CliRunner().invoke(main, ["verify", str(target), "--inputs", "2", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


# -- item 1, zero points ---------------------------------------------------------------------

@pytest.mark.parametrize("zp", [2**31, -(2**31), 2**62, -(2**63), 128, -129])
@pytest.mark.parametrize("command", ["inspect", "verify", "export"])
def test_int8_zero_point_out_of_range_is_refused_naming_the_tensor(tmp_path, zp, command):
    p = tmp_path / "zp.tflite"
    p.write_bytes(fc_model(x_zp=zp))
    args = [command, p] + (["-o", tmp_path / "out"] if command == "export" else [])
    assert_one_line_error(run(*args), "zp.tflite", "tensor 'x'", f"zero point {zp}", "[-128, 127]")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("zp", [2**31, -(2**63)])
def test_mul_input_zero_point_out_of_range_is_refused(tmp_path, zp):
    p = tmp_path / "mul.tflite"
    p.write_bytes(mul_model(zp))
    assert_one_line_error(run("verify", p), "mul.tflite", "tensor 'a'", f"zero point {zp}")


def test_nonzero_weight_zero_point_is_refused(tmp_path):
    p = tmp_path / "w.tflite"
    p.write_bytes(fc_model(w_zp=3))
    assert_one_line_error(run("export", p, "-o", tmp_path / "out"), "w.tflite", "'w'", "symmetric")


def test_int16_zero_point_must_be_zero(tmp_path):
    p = tmp_path / "i16.tflite"
    p.write_bytes(fc_model(x_zp=1, x_dtype="int16"))
    assert_one_line_error(run("inspect", p), "i16.tflite", "tensor 'x'", "(int16)", "zero point 1", "must be 0")


def test_int8_zero_point_at_the_limits_is_accepted(tmp_path):
    for zp in (-128, 127):
        p = tmp_path / f"zp{zp}.tflite"
        p.write_bytes(fc_model(x_zp=zp))
        assert verify_json(p)["bit_exact"]


# -- item 1, shift bounds --------------------------------------------------------------------

def test_quantize_multiplier_flushes_tiny_and_refuses_huge_shifts():
    """TFLite's QuantizeMultiplier: real = m * 2**(shift - 31); shift < -31 flushes to (0, 0)."""
    assert quantize_multiplier(2.0**-40) == (0, 0)
    assert quantize_multiplier(2.0**-31) == (1 << 30, -30)
    assert quantize_multiplier(2.0**(MAX_SHIFT - 1)) == (1 << 30, MAX_SHIFT)
    with pytest.raises(DmxError, match="left shift of 31"):
        quantize_multiplier(2.0**MAX_SHIFT)
    assert quantize_multiplier(2.0**MAX_SHIFT, max_shift=31) == (1 << 30, 31)


@pytest.mark.parametrize("build", [fc_model, conv_model], ids=["fc", "conv"])
@pytest.mark.parametrize("out_scale", [1e-45, 1e-20, 1e-9 / 2**12])
@pytest.mark.parametrize("command", ["verify", "export"])
def test_output_scale_needing_a_shift_beyond_30_is_refused(tmp_path, build, out_scale, command):
    p = tmp_path / "tiny.tflite"
    p.write_bytes(build(out_scale=out_scale))
    args = [command, p] + (["-o", tmp_path / "out"] if command == "export" else [])
    assert_one_line_error(run(*args), "tiny.tflite", "output 'y'", "left shift of", "more than the 30")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("build", [fc_model, conv_model], ids=["fc", "conv"])
@pytest.mark.parametrize("out_scale", [1e20, 1e30])
def test_huge_output_scale_flushes_and_the_c_is_bit_exact_under_sanitizers(tmp_path, build, out_scale):
    """A multiplier below 2**-32 flushes to 0, as in TFLite: LiteRT, reference and C all give the zero point."""
    p = tmp_path / "huge.tflite"
    p.write_bytes(build(out_scale=out_scale))
    if build is fc_model:  # LiteRT refuses a conv without bias, so it is checked on the FC only
        assert verify_json(p)["bit_exact"]
    r = CliRunner().invoke(main, ["export", str(p), "-o", str(tmp_path / "out")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert verify_json(tmp_path / "out")["bit_exact"]  # built with ASan/UBSan: a shift UB would fail it


# -- item 8: NaN and inf float inputs --------------------------------------------------------

SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 3e38, -3e38, -2147483648.0, 2.5e9, -3e9, 200.0], np.float32)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("zero_point", [0, -5, 100])
def test_reference_quantize_of_nan_and_inf_matches_the_interpreters(tmp_path, zero_point, golden):
    """On the host both give INT32_MIN for NaN and for values beyond int32, then add the zero point
    with int32 wrap-around: -128 for a zero point >= 0, 127 for a negative one."""
    m = ModelBuilder()
    x = m.tensor("x", [1, SPECIALS.size], dtype="float32")
    y = m.tensor("y", [1, SPECIALS.size], scale=0.1, zero_point=zero_point)
    m.op("QUANTIZE", [x], [y])
    p = m.save(tmp_path / "q.tflite", [x], [y])
    with np.errstate(all="raise"):  # and without a numpy warning
        ours = quantize_float(SPECIALS, 0.1, zero_point)
    golden = run_golden(p, [SPECIALS[None]], golden)[0][0]
    np.testing.assert_array_equal(ours, golden)


@pytest.mark.parametrize("zero_point", [0, -5])
def test_nan_and_inf_inputs_agree_in_reference_litert_c_and_hls(tmp_path, zero_point):
    p = tmp_path / "qfc.tflite"
    p.write_bytes(quantize_fc_model(zero_point, SPECIALS.size))
    x = tmp_path / "x.npy"
    np.save(x, SPECIALS[None])
    r = CliRunner().invoke(main, ["verify", str(p), "--input", str(x), "--inputs", "0", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0 and json.loads(r.output)["bit_exact"], r.output
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["export", str(p), "-o", str(out), "--target", "c,hls", "--input", str(x),
                                  "--vectors", "2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "__builtin_nanf" in (out / "input.h").read_text()
    assert verify_json(out)["bit_exact"]
    rc = run_csim(out, opt="-O1")
    assert rc.returncode == 0 and "PASS: 3 vectors" in rc.stdout, rc.stdout + rc.stderr


def with_output_scale(model: Path, scale: float) -> bytes:
    """The shared model with the output scale of its last conv or FC replaced (TFLite schema object API)."""
    m = S.ModelT.InitFromObj(S.Model.GetRootAs(model.read_bytes(), 0))
    sg = m.subgraphs[0]
    layers = {S.BuiltinOperator.CONV_2D, S.BuiltinOperator.DEPTHWISE_CONV_2D, S.BuiltinOperator.FULLY_CONNECTED}
    last = [op for op in sg.operators
            if max(m.operatorCodes[op.opcodeIndex].builtinCode,
                   m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode) in layers][-1]
    sg.tensors[last.outputs[0]].quantization.scale = [scale]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("name", ["ad01_int8", "kws_ref_model"])
def test_shared_model_with_a_tiny_output_scale_is_refused(tmp_path, name):
    """The issue's case: 1e-45 on kws/ad01's output passed `verify MODEL` and had UB in the C."""
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(with_output_scale(shared_or_skip(f"mlperf_tiny/{name}.tflite"), 1e-45))
    assert_one_line_error(run("export", p, "-o", tmp_path / "out"), f"{name}.tflite", "left shift of",
                          "more than the 30")
    assert not (tmp_path / "out").exists()
