"""Hostile operator and tensor fields (issue 18, items 2, 4 and the uint8 / int32 zero points).

Each bad file is made inside the test: a shared model changed through the TFLite schema's
object API, or a one-op model from tflite_builder. Every refusal is one line naming the
problem and the layer, with exit 2 and no output folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S
from click.testing import CliRunner

from dmxgen.cli import main
from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.frontends.tflite_checks import MAX_SCRATCH_BYTES
from dmxgen.goldens import run_golden, run_golden_layers
from dmxgen.testing.tflite_builder import ModelBuilder
from dmxgen.verify import verify_model
from tests.conftest import shared_or_skip
from tests.test_cli_errors import assert_one_line_error, run
from tests.test_hostile_input import fc_softmax_model

BS = S.BuiltinOperator


def mutated(relpath: str, change) -> bytes:
    """The shared model with `change(model, subgraph, ops by builtin code)` applied."""
    m = S.ModelT.InitFromObj(S.Model.GetRootAs(shared_or_skip(relpath).read_bytes(), 0))
    sg = m.subgraphs[0]
    by_code: dict[int, list] = {}
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        by_code.setdefault(max(oc.builtinCode, oc.deprecatedBuiltinCode), []).append(op)
    change(m, sg, by_code)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def write(tmp_path: Path, data: bytes, name: str = "bad.tflite") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def refused(tmp_path, path, command, *needles):
    """`command` on `path` is one error line holding `needles`, and export leaves no folder."""
    out = tmp_path / "out"
    args = {"inspect": ["inspect", path], "formats": ["inspect", "--formats", path], "verify": ["verify", path],
            "export": ["export", path, "-o", out], "hls": ["export", path, "-o", out, "--target", "hls"]}[command]
    assert_one_line_error(run(*args), path.name, *needles)
    assert not out.exists()


KWS, AD01 = "mlperf_tiny/kws_ref_model.tflite", "mlperf_tiny/ad01_int8.tflite"


# -- item 2: the five cases ----------------------------------------------------------

@pytest.mark.parametrize("command", ["verify", "export"])
def test_huge_depthwise_dilation_is_refused_before_any_allocation(tmp_path, command):
    """Was a MemoryError (numpy asked for 7 TiB) in verify and export."""
    def change(m, sg, ops):
        ops[BS.DEPTHWISE_CONV_2D][0].builtinOptions.dilationHFactor = 2**31 - 1

    p = write(tmp_path, mutated(KWS, change))
    refused(tmp_path, p, command, "operator 1 (DEPTHWISE_CONV_2D", "dilation factor 2147483647")


@pytest.mark.parametrize("padding", [2, 3, 100])
def test_padding_enum_values_tflite_does_not_define_are_refused(tmp_path, padding):
    """With a 1x1 kernel and stride 1 SAME and VALID give the same shape: the value was accepted."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 2], scale=0.1, zero_point=0)
    w = m.tensor("w", [3, 1, 1, 2], scale=0.01, zero_point=0, data=np.ones((3, 1, 1, 2)))
    y = m.tensor("y", [1, 4, 4, 3], scale=0.05, zero_point=0)
    m.op("CONV_2D", [x, w, -1], [y], padding=padding, strideH=1, strideW=1)
    p = m.save(tmp_path / "pad.tflite", [x], [y])
    refused(tmp_path, p, "inspect", "operator 0 (CONV_2D", f"padding {padding} is not one TFLite defines")


@pytest.mark.parametrize("padding", [2, 100])
def test_padding_enum_of_a_shared_model_pool_is_refused(tmp_path, padding):
    def change(m, sg, ops):
        ops[BS.AVERAGE_POOL_2D][0].builtinOptions.padding = padding

    p = write(tmp_path, mutated(KWS, change))
    refused(tmp_path, p, "verify", "AVERAGE_POOL_2D", f"padding {padding}")


@pytest.mark.parametrize("dtype", ["UINT8", "BOOL"])
@pytest.mark.parametrize("command", ["formats", "verify"])
def test_weights_retyped_are_refused_naming_the_tensor(tmp_path, dtype, command):
    """Was an uncaught CodecError in `inspect --formats`, a MISMATCH in verify for uint8."""
    def change(m, sg, ops):
        sg.tensors[ops[BS.FULLY_CONNECTED][0].inputs[1]].type = getattr(S.TensorType, dtype)

    p = write(tmp_path, mutated(AD01, change))
    refused(tmp_path, p, command, "operator 0 (FULLY_CONNECTED", f"is {dtype.lower()}; only int8 weights")


@pytest.mark.parametrize("command", ["verify", "export"])
def test_bias_reshaped_to_a_column_is_refused(tmp_path, command):
    """[128] -> [128, 1] reached a numpy broadcast error in the FC reference."""
    def change(m, sg, ops):
        bias = sg.tensors[ops[BS.FULLY_CONNECTED][0].inputs[2]]
        bias.shape = [bias.shape[0], 1]

    p = write(tmp_path, mutated(AD01, change))
    refused(tmp_path, p, command, "FULLY_CONNECTED", "int32[128, 1]", "constant int32 vector of 128")


@pytest.mark.parametrize("command", ["hls", "verify"])
def test_emptied_subgraph_outputs_are_refused(tmp_path, command):
    """Was an IndexError in the HLS vectors and a TypeError in verify."""
    def change(m, sg, ops):
        sg.outputs = []

    refused(tmp_path, write(tmp_path, mutated(AD01, change)), command, "the model lists no outputs")


# -- item 2: more fields an op reads ---------------------------------------------------------

def conv(tmp_path, name="conv.tflite", opname="CONV_2D", w_shape=(3, 3, 3, 2), out_shape=(1, 6, 6, 3),
         w_dtype="int8", **options) -> Path:
    m = ModelBuilder()
    x = m.tensor("x", [1, 6, 6, 2], scale=0.1, zero_point=0)
    w = m.tensor("w", list(w_shape), dtype=w_dtype, scale=0.01, zero_point=0, data=np.ones(w_shape))
    y = m.tensor("y", list(out_shape), scale=0.05, zero_point=0)
    opts = {"padding": "SAME", "strideH": 1, "strideW": 1, "dilationHFactor": 1, "dilationWFactor": 1} | options
    m.op(opname, [x, w, -1], [y], **opts)
    return m.save(tmp_path / name, [x], [y])


@pytest.mark.parametrize("field,value,needle", [("strideH", 0, "stride 0"), ("strideW", -3, "stride -3"),
                                                ("dilationWFactor", 0, "dilation factor 0")])
def test_strides_and_dilations_outside_the_window_range_are_refused(tmp_path, field, value, needle):
    """A stride of 0 divided by zero in the padding computation."""
    refused(tmp_path, conv(tmp_path, **{field: value}), "inspect", "CONV_2D", needle, "outside [1, 65536]")


def test_a_layer_over_the_scratch_limit_is_refused_before_allocating(tmp_path):
    """A dilation of 60000 is in range, but SAME padding would then pad the 6x6 input to ~120000 rows."""
    p = conv(tmp_path, dilationHFactor=60000, dilationWFactor=60000)
    refused(tmp_path, p, "verify", "CONV_2D", "bytes of scratch memory", f"{MAX_SCRATCH_BYTES:,}")


def test_options_of_another_type_are_refused(tmp_path):
    """Conv2D options read from a Pool2DOptions table would be other fields' bytes."""
    m = S.ModelT.InitFromObj(S.Model.GetRootAs(conv(tmp_path).read_bytes(), 0))
    op = m.subgraphs[0].operators[0]
    op.builtinOptionsType = S.BuiltinOptions.Pool2DOptions
    op.builtinOptions = S.Pool2DOptionsT()
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    refused(tmp_path, write(tmp_path, bytes(b.Output())), "inspect", "CONV_2D", "not Conv2DOptions")


def test_missing_required_options_are_refused(tmp_path):
    def change(m, sg, ops):
        op = ops[BS.SOFTMAX][0]
        op.builtinOptionsType, op.builtinOptions = 0, None

    refused(tmp_path, write(tmp_path, mutated(KWS, change)), "verify", "SOFTMAX", "no SoftmaxOptions")


def test_absent_weights_input_is_refused(tmp_path):
    def change(m, sg, ops):
        op = ops[BS.FULLY_CONNECTED][0]
        op.inputs = [op.inputs[0], -1, op.inputs[2]]

    refused(tmp_path, write(tmp_path, mutated(AD01, change)), "inspect", "FULLY_CONNECTED",
            "input 1 is absent")


def test_tensor_index_past_the_end_is_refused(tmp_path):
    def change(m, sg, ops):
        op = ops[BS.FULLY_CONNECTED][0]
        op.inputs = [len(sg.tensors) + 5] + list(op.inputs[1:])

    refused(tmp_path, write(tmp_path, mutated(AD01, change)), "inspect", "tensor index", "does not exist")


@pytest.mark.parametrize("dim", [-1, 0])
def test_negative_or_zero_dimensions_are_refused(tmp_path, dim):
    def change(m, sg, ops):
        sg.tensors[ops[BS.FULLY_CONNECTED][1].outputs[0]].shape = [1, dim]

    refused(tmp_path, write(tmp_path, mutated(AD01, change)), "inspect", f"{dim}")


def test_per_channel_weight_scale_count_must_match_the_channels(tmp_path):
    """Was silently read as one scale for every channel."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    w = m.tensor("w", [4, 8], scale=[0.01, 0.02], zero_point=0, data=np.ones((4, 8)))
    y = m.tensor("y", [1, 4], scale=0.05, zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, -1], [y])
    p = m.save(tmp_path / "fc.tflite", [x], [y])
    refused(tmp_path, p, "inspect", "FULLY_CONNECTED", "tensor 'w'", "2 quantization scales", "4 entries")


@pytest.mark.parametrize("axis", [5, -7])
def test_reduction_axis_outside_the_rank_is_refused(tmp_path, axis):
    """Was wrapped modulo the rank, reducing another axis than TFLite (which refuses it)."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 2], scale=0.1, zero_point=0)
    ax = m.tensor("axes", [1], dtype="int32", data=[axis])
    y = m.tensor("y", [1, 4, 2], scale=0.1, zero_point=0)
    m.op("MEAN", [x, ax], [y], keepDims=False)
    p = m.save(tmp_path / "mean.tflite", [x], [y])
    refused(tmp_path, p, "inspect", "MEAN", f"reduction axis {axis}")


@pytest.mark.parametrize("which", ["input", "output"])
def test_constant_tensor_as_model_io_is_refused(tmp_path, which):
    """A constant listed as an input made LiteRT segfault in set_tensor; as an output, export crashed."""
    def change(m, sg, ops):
        w = ops[BS.CONV_2D][0].inputs[1]
        if which == "input":
            sg.inputs = list(sg.inputs) + [w]
        else:
            sg.outputs = list(sg.outputs) + [w]

    refused(tmp_path, write(tmp_path, mutated(KWS, change)), "verify", f"model {which}", "constant tensor")


# -- zero points of uint8 and int32 tensors --------------------------------------------------

@pytest.mark.parametrize("zp", [256, -1, 2**31])
def test_uint8_zero_point_outside_0_255_is_refused(tmp_path, zp):
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], dtype="float32")
    q = m.tensor("q", [1, 8], dtype="uint8", scale=0.1, zero_point=zp)
    m.op("QUANTIZE", [x], [q])
    p = m.save(tmp_path / "u8.tflite", [x], [q])
    refused(tmp_path, p, "inspect", "tensor 'q' (uint8)", f"zero point {zp}", "[0, 255]")


def test_int32_bias_zero_point_must_be_zero(tmp_path):
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=0.1, zero_point=0)
    w = m.tensor("w", [4, 8], scale=0.01, zero_point=0, data=np.ones((4, 8)))
    b = m.tensor("b", [4], dtype="int32", scale=0.001, zero_point=5, data=np.arange(4))
    y = m.tensor("y", [1, 4], scale=0.05, zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, b], [y])
    p = m.save(tmp_path / "bias.tflite", [x], [y])
    refused(tmp_path, p, "verify", "tensor 'b' (int32)", "zero point 5", "must be 0")


# -- item 4: the golden runs in a child process -----------------------------------------------

def constant_input_model(tmp_path) -> Path:
    """kws with its first conv's weights also listed as a model input: LiteRT segfaults writing it."""
    def change(m, sg, ops):
        sg.inputs = list(sg.inputs) + [ops[BS.CONV_2D][0].inputs[1]]

    return write(tmp_path, mutated(KWS, change), "const_input.tflite")


def test_an_interpreter_crash_is_one_error_and_the_worker_restarts(tmp_path):
    p = constant_input_model(tmp_path)
    x = np.zeros((1, 49, 10, 1), np.int8)
    w = np.zeros((64, 10, 4, 1), np.int8)
    with pytest.raises(DmxError) as e:
        run_golden_layers(p, [x, w], isolate=True)
    msg = str(e.value)
    assert "\n" not in msg and "const_input.tflite: the TFLite interpreter crashed on this model" in msg
    assert "SIGSEGV" in msg
    good = shared_or_skip(KWS)  # the next run gets a fresh worker and matches an in-process run
    np.testing.assert_array_equal(run_golden(good, [x], isolate=True)[0], run_golden(good, [x])[0])


def test_verify_turns_an_interpreter_crash_into_a_dmx_error(tmp_path):
    """verify_model (what `dmxgen verify` runs) isolates the golden: this process survives."""
    graph = load_tflite(shared_or_skip(KWS))
    with pytest.raises(DmxError, match="the TFLite interpreter crashed on this model"):
        verify_model(graph, constant_input_model(tmp_path), [[np.zeros((1, 49, 10, 1), np.int8),
                                                               np.zeros((64, 10, 4, 1), np.int8)]])


def test_verify_through_the_cli_is_unchanged_by_isolation():
    r = CliRunner().invoke(main, ["verify", str(shared_or_skip(KWS)), "--inputs", "3", "--json"],
                           catch_exceptions=False)
    assert r.exit_code == 0 and json.loads(r.output)["bit_exact"], r.output


def test_per_channel_weights_along_another_dimension_are_refused(tmp_path):
    """Depthwise weights [1, 3, 3, 3] quantized along dimension 1 (3 entries, like the channels):
    LiteRT refuses it; it was read as per-channel along the output channels."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 3], scale=0.1, zero_point=0)
    w = m.tensor("w", [1, 3, 3, 3], scale=[0.01, 0.02, 0.03], zero_point=0, data=np.ones((1, 3, 3, 3)), axis=1)
    y = m.tensor("y", [1, 4, 4, 3], scale=0.05, zero_point=0)
    m.op("DEPTHWISE_CONV_2D", [x, w, -1], [y], padding="SAME", strideH=1, strideW=1, depthMultiplier=1,
         dilationHFactor=1, dilationWFactor=1)
    p = m.save(tmp_path / "dw.tflite", [x], [y])
    refused(tmp_path, p, "inspect", "DEPTHWISE_CONV_2D", "'w' is quantized along dimension 1",
            "output channels are dimension 3")


def test_an_interpreter_that_hangs_is_stopped_after_the_timeout(monkeypatch):
    """A run over GOLDEN_TIMEOUT kills the worker (here: 1 ms, less than its start-up takes); the
    next run gets a new one."""
    from dmxgen import goldens

    good = shared_or_skip(KWS)
    x = np.zeros((1, 49, 10, 1), np.int8)
    goldens._worker().close()  # a fresh worker, still starting when the request goes out
    goldens._WORKER = None
    monkeypatch.setattr(goldens, "GOLDEN_TIMEOUT", 0.001)
    with pytest.raises(DmxError, match=r"gave no result within 0.001 s on this model; it was stopped"):
        run_golden(good, [x], isolate=True)
    monkeypatch.setattr(goldens, "GOLDEN_TIMEOUT", 600.0)
    np.testing.assert_array_equal(run_golden(good, [x], isolate=True)[0], run_golden(good, [x])[0])


def softmax_model(tmp_path, input_scale: float, beta: float) -> Path:
    m = ModelBuilder()
    x = m.tensor("x", [1, 8], scale=input_scale, zero_point=0)
    y = m.tensor("y", [1, 8], scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [x], [y], beta=beta)
    return m.save(tmp_path / "softmax.tflite", [x], [y])


def test_softmax_table_overflowing_float32_is_computed_without_a_warning(tmp_path):
    """beta * scale * d overflows float32 to -inf for large d, as in C: expf gives 0. It printed a
    numpy RuntimeWarning; now the output is the result alone, bit-exact with LiteRT."""
    r = run("verify", softmax_model(tmp_path, 0.1, 3e38), "--inputs", "3")
    assert r.returncode == 0 and "BIT-EXACT" in r.stdout and r.stderr == "", r.stdout + r.stderr


def test_softmax_beta_times_scale_beyond_float32_is_refused(tmp_path):
    refused(tmp_path, softmax_model(tmp_path, 100.0, 3e38), "inspect", "SOFTMAX", "overflows float32")


@pytest.mark.parametrize("beta", [1e-30, 2.0**-27 / 0.2])
def test_softmax_beta_litert_aborts_on_is_refused(tmp_path, beta):
    """beta * input scale * 2**26 <= 1 made LiteRT and TFLM abort (SIGABRT) preparing the softmax."""
    refused(tmp_path, write(tmp_path, fc_softmax_model(beta=beta)), "verify", "SOFTMAX", "below 2^-26")


def test_an_interpreter_crash_in_the_cli_is_one_line(tmp_path, monkeypatch):
    """`dmxgen verify` in this process, its golden handed a file LiteRT segfaults on (the graph is
    the valid kws one, since the frontend refuses that file): exit 2, one line, the process lives."""
    import dmxgen.commands.verify as verify_cmd

    good = shared_or_skip(KWS)
    crash = constant_input_model(tmp_path)
    monkeypatch.setattr(verify_cmd, "load_model", lambda path, semantics: load_tflite(good))
    monkeypatch.setattr(verify_cmd, "random_inputs", lambda graph, n, seed: [
        [np.zeros((1, 49, 10, 1), np.int8), np.zeros((64, 10, 4, 1), np.int8)]])
    r = CliRunner().invoke(main, ["verify", str(crash)])
    assert r.exit_code == 2 and r.stdout == "", r.output
    assert r.stderr.strip().splitlines() == [
        f"dmxgen: error: {crash}: the TFLite interpreter crashed on this model: killed by SIGSEGV"]


def test_buffer_index_past_the_end_is_refused(tmp_path):
    """Was read as 'no data': a weight became a run-time input, an activation kept going."""
    def change(m, sg, ops):
        sg.tensors[ops[BS.FULLY_CONNECTED][0].outputs[0]].buffer = len(m.buffers) + 3

    refused(tmp_path, write(tmp_path, mutated(AD01, change)), "inspect", "FULLY_CONNECTED",
            "refers to buffer", "the model has")


def test_mul_scales_whose_quotient_overflows_float32_are_refused_without_a_warning(tmp_path):
    """Found by tools/fuzz_tflite.py: a MUL input scale of 3.4e38 made LiteRT's float32
    s_a * s_b / s_out overflow; numpy printed a RuntimeWarning before a misleading error."""
    m = ModelBuilder()
    a = m.tensor("a", [1, 8], scale=3.4e38, zero_point=0)
    b = m.tensor("b", [1, 8], scale=10.0, zero_point=0)
    y = m.tensor("y", [1, 8], scale=0.05, zero_point=0)
    m.op("MUL", [a, b], [y])
    p = m.save(tmp_path / "mul.tflite", [a, b], [y])
    refused(tmp_path, p, "inspect", "operator 0 (MUL", "requantization multiplier inf is not a finite")


def test_depthwise_input_without_channels_is_refused_naming_the_tensor(tmp_path):
    """An input of 0 channels divided by zero in the depthwise mapping ("corrupt file" before)."""
    m = ModelBuilder()
    x = m.tensor("x", [1, 4, 4, 0], scale=0.1, zero_point=0)
    w = m.tensor("w", [1, 3, 3, 2], scale=0.01, zero_point=0, data=np.ones((1, 3, 3, 2)))
    y = m.tensor("y", [1, 4, 4, 2], scale=0.05, zero_point=0)
    m.op("DEPTHWISE_CONV_2D", [x, w, -1], [y], padding="SAME", strideH=1, strideW=1, depthMultiplier=1,
         dilationHFactor=1, dilationWFactor=1)
    p = m.save(tmp_path / "dw0.tflite", [x], [y])
    refused(tmp_path, p, "inspect", "operator 0 (DEPTHWISE_CONV_2D", "tensor 'x' of shape [1, 4, 4, 0] holds no values")


def test_a_layer_over_the_mac_limit_is_refused(tmp_path):
    """An FC of 2**16 rows of 4096 inputs by 64 outputs: 2**34 multiply-accumulates, each tensor
    within bounds (the input is 256 MiB of int8); the reference would take 2 GiB and minutes."""
    m = ModelBuilder()
    x = m.tensor("x", [2**16, 4096], scale=0.1, zero_point=0)
    w = m.tensor("w", [64, 4096], scale=0.01, zero_point=0, data=np.ones((64, 4096)))
    y = m.tensor("y", [2**16, 64], scale=0.05, zero_point=0)
    m.op("FULLY_CONNECTED", [x, w, -1], [y])
    p = m.save(tmp_path / "macs.tflite", [x], [y])
    refused(tmp_path, p, "verify", "FULLY_CONNECTED", "17,179,869,184 multiply-accumulates", "over the limit")
