"""Two int16 (TFLite 16x8) models end to end: a DS-CNN keyword spotter and a conv autoencoder.

Each is written once as a sequence of layers with seeded random float weights. The float32
twin runs in LiteRT on calibration inputs, and each activation's scale comes from its largest
magnitude there, put at two thirds of the int16 range. The 16x8 model then has int16 activations
(zero point 0), int8 per-channel weights and int64 biases. The DS-CNN takes float32, quantizes
it to int16 and dequantizes its softmax at the end; the autoencoder has int16 I/O. Each must
match LiteRT's reference kernels and TFLite Micro (`dmxgen verify model.tflite`), export, verify
its folder bit-exact on the host, and PASS on the emulated Cortex-M55.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from _fw_harness import needs_tools

from dmxgen import firmware, reference
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

INT16_MAX = 32767
HEADROOM = 1.5  # the calibration peak at 2/3 of the int16 range: held-out inputs reach further


@dataclass
class Layer:
    name: str
    op: str  # the TFLite operator
    shape: tuple  # the output's
    weights: np.ndarray | None = None  # float: OHWI (conv, TRANSPOSE_CONV), 1HWC (depthwise), [out, in] (FC)
    bias: np.ndarray | None = None
    axis: int = 0  # the weights' output-channel dim
    options: dict = field(default_factory=dict)
    fixed_scale: float | None = None  # an output scale the operator prescribes (int16 SOFTMAX: 1/32768)
    keeps_scale: bool = False  # the output on the input's grid (TFLite's pooling requires it)


class Net:
    """A sequential model written once, emitted as float32 (to calibrate) or as 16x8 (under test)."""

    def __init__(self, shape, seed: int, float_io: bool):
        self.rng = np.random.default_rng(seed)
        self.input_shape, self.float_io = tuple(shape), float_io
        self.layers: list[Layer] = []

    @property
    def shape(self) -> tuple:
        return self.layers[-1].shape if self.layers else self.input_shape

    def _w(self, shape, fan_in: int) -> np.ndarray:
        return (self.rng.normal(0, np.sqrt(2.0 / fan_in), shape)).astype(np.float32)

    def _b(self, n: int) -> np.ndarray:
        return self.rng.normal(0, 0.1, n).astype(np.float32)

    def conv(self, cout: int, k, stride: int = 1, act: str = "RELU") -> "Net":
        n, h, w, cin = self.shape
        out = (n, -(-h // stride), -(-w // stride), cout)
        self.layers.append(Layer(f"conv{len(self.layers)}", "CONV_2D", out, self._w((cout, *k, cin), k[0] * k[1] * cin),
                                 self._b(cout), 0, {"padding": "SAME", "strideH": stride, "strideW": stride,
                                                    "fusedActivationFunction": act}))
        return self

    def depthwise(self, k=(3, 3), act: str = "RELU") -> "Net":
        c = self.shape[3]
        self.layers.append(Layer(f"dw{len(self.layers)}", "DEPTHWISE_CONV_2D", self.shape,
                                 self._w((1, *k, c), k[0] * k[1]), self._b(c), 3,
                                 {"padding": "SAME", "strideH": 1, "strideW": 1, "depthMultiplier": 1,
                                  "fusedActivationFunction": act}))
        return self

    def tconv(self, cout: int, k=(3, 3), stride: int = 2) -> "Net":
        n, h, w, cin = self.shape
        out = (n, h * stride, w * stride, cout)
        self.layers.append(Layer(f"tconv{len(self.layers)}", "TRANSPOSE_CONV", out,
                                 self._w((cout, *k, cin), k[0] * k[1] * cin // (stride * stride)), self._b(cout), 0,
                                 {"padding": "SAME", "strideH": stride, "strideW": stride}))
        return self

    def leaky_relu(self, alpha: float = 0.2) -> "Net":
        self.layers.append(Layer(f"leaky{len(self.layers)}", "LEAKY_RELU", self.shape, options={"alpha": alpha}))
        return self

    def avg_pool(self) -> "Net":
        n, h, w, c = self.shape
        self.layers.append(Layer(f"pool{len(self.layers)}", "AVERAGE_POOL_2D", (n, 1, 1, c),
                                 options={"padding": "VALID", "strideH": 1, "strideW": 1, "filterHeight": h,
                                          "filterWidth": w}, keeps_scale=True))
        return self

    def fc(self, units: int) -> "Net":
        fan_in = int(np.prod(self.shape[1:]))
        self.layers.append(Layer(f"fc{len(self.layers)}", "FULLY_CONNECTED", (self.shape[0], units),
                                 self._w((units, fan_in), fan_in), self._b(units), 0))
        return self

    def softmax(self) -> "Net":
        self.layers.append(Layer(f"softmax{len(self.layers)}", "SOFTMAX", self.shape, options={"beta": 1.0},
                                 fixed_scale=1 / 32768))
        return self

    # -- emitting ----------------------------------------------------------------------------------
    def build(self, scales: dict[str, float] | None = None) -> bytes:
        """The float32 model (scales None) or the 16x8 one with these activation scales."""
        m, q = ModelBuilder(), scales is not None
        act = "int16" if q else "float32"

        def activation(name, shape):
            return m.tensor(name, shape, act, scale=scales[name] if q else None, zero_point=0 if q else None)

        if q and self.float_io:
            first = m.tensor("input", self.input_shape, "float32")
            cur = activation("input_q", self.input_shape)
            m.op("QUANTIZE", [first], [cur])
        else:
            first = cur = activation("input_q" if q else "input", self.input_shape)  # int16 I/O, or float32
        s_in = scales["input_q"] if q else None
        for L in self.layers:
            ins = [cur]
            if L.weights is not None:
                wt, bt = self._constants(m, L, s_in)
                ins = [m.tensor(f"{L.name}/shape", [4], "int32", data=list(L.shape)), wt, cur, bt] \
                    if L.op == "TRANSPOSE_CONV" else [cur, wt, bt]
            cur = activation(L.name, L.shape)
            m.op(L.op, ins, [cur], **L.options)
            s_in = scales[L.name] if q else None
        last = cur
        if q and self.float_io:
            last = m.tensor("output", self.layers[-1].shape, "float32")
            m.op("DEQUANTIZE", [cur], [last])
        return m.build([first], [last])

    @staticmethod
    def _constants(m: ModelBuilder, L: Layer, s_in: float | None):
        if s_in is None:
            return (m.tensor(f"{L.name}/w", L.weights.shape, "float32", data=L.weights),
                    m.tensor(f"{L.name}/b", L.bias.shape, "float32", data=L.bias))
        reduce = tuple(d for d in range(L.weights.ndim) if d != L.axis)
        s_w = (np.abs(L.weights).max(axis=reduce) / 127).astype(np.float32)
        shape = [1] * L.weights.ndim
        shape[L.axis] = -1
        codes = np.clip(np.round(L.weights / s_w.reshape(shape)), -127, 127)
        s_b = np.float32(s_in) * s_w  # the bias scale LiteRT checks: s_in * s_w
        wt = m.tensor(f"{L.name}/w", L.weights.shape, "int8", scale=s_w, zero_point=np.zeros(s_w.size), axis=L.axis,
                      data=codes)
        bt = m.tensor(f"{L.name}/b", L.bias.shape, "int64", scale=s_b, zero_point=np.zeros(s_w.size),
                      data=np.round(L.bias / s_b).astype(np.int64))
        return wt, bt

    def calibrate(self, xs: np.ndarray) -> dict[str, float]:
        """Each activation's scale: its largest magnitude over the float model's run on xs, at 2/3 of int16."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        it = Interpreter(model_content=self.build(), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        index = {d["name"]: d["index"] for d in it.get_tensor_details()}
        peak = {name: 0.0 for name in ["input"] + [L.name for L in self.layers]}
        for x in xs:
            it.set_tensor(index["input"], x[None].astype(np.float32))
            it.invoke()
            for name in peak:
                peak[name] = max(peak[name], float(np.abs(it.get_tensor(index[name])).max()))
        scales, prev = {"input_q": HEADROOM * peak["input"] / INT16_MAX}, "input_q"
        for L in self.layers:
            scales[L.name] = scales[prev] if L.keeps_scale else L.fixed_scale or HEADROOM * peak[L.name] / INT16_MAX
            prev = L.name
        return scales


def ds_cnn() -> Net:
    """DS-CNN keyword spotting on 49 x 10 MFCCs: conv 10x4 / 2, two depthwise-separable blocks, pool, FC, softmax."""
    net = Net((1, 49, 10, 1), seed=16, float_io=True).conv(24, (10, 4), stride=2)
    for _ in range(2):
        net.depthwise().conv(24, (1, 1))
    return net.avg_pool().fc(12).softmax()


def autoencoder() -> Net:
    """A conv autoencoder on 16 x 16: two stride-2 convs down, two stride-2 transpose convs up, a conv out."""
    net = Net((1, 16, 16, 1), seed=17, float_io=False).conv(8, (3, 3), stride=2).conv(16, (3, 3), stride=2)
    return net.tconv(8).leaky_relu().tconv(4).leaky_relu().conv(1, (3, 3), act="NONE")


def smooth_inputs(rng, shape, n: int) -> np.ndarray:
    """Inputs with structure (a random walk along the first spatial axis plus noise), not white noise only."""
    walk = np.cumsum(rng.normal(0, 0.4, (n, *shape[1:])), axis=1)
    return (walk + rng.normal(0, 0.3, walk.shape)).astype(np.float32)


MODELS = {"ds_cnn": ds_cnn, "autoencoder": autoencoder}
KINDS = {"ds_cnn": ("quantize", "conv2d", "depthwise_conv2d", "avg_pool2d", "fully_connected", "softmax16",
                    "dequantize"),
         "autoencoder": ("conv2d", "transpose_conv", "prelu")}


def build_tflite(name: str, folder: Path):
    """MODELS[name] calibrated on 16 seeded inputs and written to folder/model.tflite: (its path, the
    net, its scales, the generator, which goes on to make the held-out inputs). The HLS test
    (tests/hls/test_int16_hls.py) builds the same models with it."""
    net = MODELS[name]()
    rng = np.random.default_rng(5)
    scales = net.calibrate(smooth_inputs(rng, net.input_shape, 16))
    path = folder / "model.tflite"
    path.write_bytes(net.build(scales))
    return path, net, scales, rng


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (model.tflite, the exported folder, held-out float inputs (also in held_out.npy), the scales),
    made once."""
    made = {}

    def get(name: str):
        if name not in made:
            d = tmp_path_factory.mktemp(name)
            path, net, scales, rng = build_tflite(name, d)
            out = d / "out"
            cli("export", path, "-o", out, "--vectors", "2")
            held = smooth_inputs(rng, net.input_shape, 4)
            np.save(d / "held_out.npy", held)  # float: verify quantizes it for an int16 input
            made[name] = (path, out, held, scales)
        return made[name]

    return get


def cli(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "dmxgen.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def model_input(x: np.ndarray, scale: float, float_io: bool) -> np.ndarray:
    """x as the 16x8 model takes it: float32 (its QUANTIZE is in the graph) or int16 codes."""
    if float_io:
        return x[None]
    return np.clip(np.round(x / scale), -32768, INT16_MAX).astype(np.int16)[None]


@pytest.mark.parametrize("name", list(MODELS))
def test_int16_model_is_16x8_and_uses_the_int16_range(built, name):
    path, _, xs, scales = built(name)
    g = load_tflite(path)
    kinds = [op.kind for op in g.ops]
    assert set(KINDS[name]) <= set(kinds), kinds
    weighted = [op for op in g.ops if op.kind in ("conv2d", "depthwise_conv2d", "fully_connected", "transpose_conv")]
    assert all(g.tensors[op.inputs[2]].dtype == "int64" for op in weighted) and len(weighted) >= 5, kinds
    assert all(g.tensors[op.inputs[1]].dtype == "int8" for op in weighted)
    net = MODELS[name]()
    for x in xs:
        values = reference.run(g, [model_input(x, scales["input_q"], net.float_io)], keep=True)
        for L in net.layers:
            if L.op == "SOFTMAX":
                continue
            t = next(t for t in g.tensors.values() if t.name == L.name)
            v = np.abs(values[t.name].astype(np.int32))
            assert t.dtype == "int16" and v.max() > 2048, (L.name, int(v.max()))  # the range is used
            assert (v >= INT16_MAX).mean() < 0.05, (L.name, float((v >= INT16_MAX).mean()))  # rarely saturated


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", list(MODELS))
def test_int16_model_reference_matches_the_interpreters(built, name, golden):
    path, *_ = built(name)
    # 4 random inputs and the 4 held-out ones; exit 0 only when every output is bit-exact
    r = cli("verify", path, "--inputs", "4", "--input", path.parent / "held_out.npy", "--golden", golden)
    assert r.stdout.strip().endswith("BIT-EXACT") and f"8 inputs against {golden}" in r.stdout


@pytest.mark.parametrize("name", list(MODELS))
def test_int16_model_export_verifies_on_the_host(built, name):
    path, out, *_ = built(name)
    assert "BIT-EXACT" in cli("verify", out, "--inputs", "4", "--input", path.parent / "held_out.npy").stdout


@pytest.mark.firmware
@needs_tools
@pytest.mark.parametrize("name", list(MODELS))
def test_int16_model_passes_on_the_m55(built, tmp_path, name):
    _, out, *_ = built(name)
    r = firmware.run(out, build_dir=tmp_path / "build", timeout=300)
    assert r.passed and r.exit_status == 0, r.log[-2000:]
