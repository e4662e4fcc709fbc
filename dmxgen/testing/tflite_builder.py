"""Build int8 .tflite flatbuffers with the TFLite schema that LiteRT ships.

Used by tests (one-op models for every edge case, broken models for error
paths) and by the demo; no TensorFlow needed.
"""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S

_DTYPES = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32, "float32": S.TensorType.FLOAT32,
           "uint8": S.TensorType.UINT8, "int16": S.TensorType.INT16, "int64": S.TensorType.INT64}
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", S.Conv2DOptionsT),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", S.DepthwiseConv2DOptionsT),
    "FULLY_CONNECTED": ("FullyConnectedOptions", S.FullyConnectedOptionsT),
    "ADD": ("AddOptions", S.AddOptionsT),
    "MUL": ("MulOptions", S.MulOptionsT),
    "SUB": ("SubOptions", S.SubOptionsT),
    "AVERAGE_POOL_2D": ("Pool2DOptions", S.Pool2DOptionsT),
    "MAX_POOL_2D": ("Pool2DOptions", S.Pool2DOptionsT),
    "RESHAPE": ("ReshapeOptions", S.ReshapeOptionsT),
    "SOFTMAX": ("SoftmaxOptions", S.SoftmaxOptionsT),
    "PAD": ("PadOptions", S.PadOptionsT),
    "PADV2": ("PadV2Options", S.PadV2OptionsT),
    "MIRROR_PAD": ("MirrorPadOptions", S.MirrorPadOptionsT),
    "MEAN": ("ReducerOptions", S.ReducerOptionsT),
    "REDUCE_MAX": ("ReducerOptions", S.ReducerOptionsT),
    "REDUCE_MIN": ("ReducerOptions", S.ReducerOptionsT),
    "SUM": ("ReducerOptions", S.ReducerOptionsT),
    "SQUARED_DIFFERENCE": ("SquaredDifferenceOptions", S.SquaredDifferenceOptionsT),
    "L2_NORMALIZATION": ("L2NormOptions", S.L2NormOptionsT),
    "LOG_SOFTMAX": ("LogSoftmaxOptions", S.LogSoftmaxOptionsT),
    "ARG_MAX": ("ArgMaxOptions", S.ArgMaxOptionsT),
    "ARG_MIN": ("ArgMinOptions", S.ArgMinOptionsT),
    "QUANTIZE": ("QuantizeOptions", S.QuantizeOptionsT),
    "DEQUANTIZE": ("DequantizeOptions", S.DequantizeOptionsT),
    "TRANSPOSE_CONV": ("TransposeConvOptions", S.TransposeConvOptionsT),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", S.ResizeBilinearOptionsT),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions", S.ResizeNearestNeighborOptionsT),
    "TANH": (None, None),
    "STRIDED_SLICE": ("StridedSliceOptions", S.StridedSliceOptionsT),
    "SLICE": ("SliceOptions", S.SliceOptionsT),
    "SPLIT": ("SplitOptions", S.SplitOptionsT),
    "SPLIT_V": ("SplitVOptions", S.SplitVOptionsT),
    "SQUEEZE": ("SqueezeOptions", S.SqueezeOptionsT),
    "EXPAND_DIMS": ("ExpandDimsOptions", S.ExpandDimsOptionsT),
    "CONCATENATION": ("ConcatenationOptions", S.ConcatenationOptionsT),
    "LEAKY_RELU": ("LeakyReluOptions", S.LeakyReluOptionsT),
    "BATCH_MATMUL": ("BatchMatMulOptions", S.BatchMatMulOptionsT),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("UnidirectionalSequenceLSTMOptions", S.UnidirectionalSequenceLSTMOptionsT),
    "SVDF": ("SVDFOptions", S.SVDFOptionsT),
}
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
PADDING = {"SAME": 0, "VALID": 1}


class ModelBuilder:
    """Accumulates tensors and operators of one subgraph; `build()` returns the bytes."""

    def __init__(self):
        self.model = S.ModelT()
        self.model.version = 3
        self.model.buffers = [S.BufferT()]
        self.model.operatorCodes = []
        self.sg = S.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []
        self._codes: dict[tuple[int, str | None, int], int] = {}

    def tensor(self, name: str, shape, dtype: str = "int8", scale=None, zero_point=None, data=None,
               axis: int = 0, is_variable: bool = False) -> int:
        """`is_variable`: a state tensor the interpreter keeps between invocations (LSTM states)."""
        t = S.TensorT()
        t.name = name.encode()
        t.shape = list(int(d) for d in shape)
        t.type = _DTYPES[dtype]
        t.buffer = 0
        t.isVariable = is_variable
        if data is not None:
            b = S.BufferT()
            b.data = np.ascontiguousarray(np.asarray(data, dtype=dtype)).tobytes()
            self.model.buffers.append(b)
            t.buffer = len(self.model.buffers) - 1
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            zp = np.atleast_1d(0 if zero_point is None else zero_point)
            q.zeroPoint = [int(z) for z in (zp if zp.size == len(q.scale) else np.full(len(q.scale), zp[0]))]
            q.quantizedDimension = axis
            t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def op(self, opname: str, inputs: list[int], outputs: list[int], custom_code: str | None = None,
           deprecated_code: str | None = None, intermediates: list[int] | None = None,
           custom_options: bytes | None = None, **options) -> None:
        """Append an operator; `custom_code` names a CUSTOM one (e.g. "ethos-u", as Vela writes);
        `deprecated_code` writes another operator into deprecated_builtin_code (a file whose two
        fields disagree; the options stay those of `opname`); `intermediates` lists the operator's
        intermediate tensors (the quantized LSTM's gate and hidden scales, as the converter writes them)."""
        code = getattr(S.BuiltinOperator, opname)
        deprecated = min(code, 127) if deprecated_code is None else getattr(S.BuiltinOperator, deprecated_code)
        key = (code, custom_code, deprecated)
        if key not in self._codes:
            oc = S.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = deprecated
            oc.customCode = custom_code
            oc.version = 1
            self.model.operatorCodes.append(oc)
            self._codes[key] = len(self.model.operatorCodes) - 1
        o = S.OperatorT()
        o.opcodeIndex = self._codes[key]
        o.inputs, o.outputs = list(inputs), list(outputs)
        if intermediates is not None:
            o.intermediates = list(intermediates)
        if custom_options is not None:  # a CUSTOM operator's opaque option bytes
            o.customOptions = list(custom_options)
        kind, cls = _OPTIONS.get(opname, (None, None))
        if cls is not None:
            opts = cls()
            for k, v in options.items():
                if k == "fusedActivationFunction" and isinstance(v, str):
                    v = ACTIVATIONS[v]
                if k == "padding" and isinstance(v, str):
                    v = PADDING[v]
                setattr(opts, k, v)
            o.builtinOptionsType = getattr(S.BuiltinOptions, kind)
            o.builtinOptions = opts
        self.sg.operators.append(o)

    def to_int16(self) -> "ModelBuilder":
        """The same model in TFLite's 16x8 scheme: every int8 tensor without data (the activations)
        becomes int16 with zero point 0, its scale divided by 256 (the same real range); constant
        tensors (weights) stay as they are. For the int16 cases of the op tests."""
        for t in self.sg.tensors:
            if t.type == S.TensorType.INT8 and t.buffer == 0:
                t.type = S.TensorType.INT16
                if t.quantization is not None and t.quantization.scale:
                    t.quantization.scale = [s / 256 for s in t.quantization.scale]
                    t.quantization.zeroPoint = [0] * len(t.quantization.scale)
        return self

    def build(self, inputs: list[int], outputs: list[int]) -> bytes:
        self.sg.inputs, self.sg.outputs = list(inputs), list(outputs)
        self.model.subgraphs = [self.sg]
        b = flatbuffers.Builder(1024)
        b.Finish(self.model.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def save(self, path: str | Path, inputs: list[int], outputs: list[int]) -> Path:
        path = Path(path)
        path.write_bytes(self.build(inputs, outputs))
        return path


def small_cnn(seed: int = 0, sparsity: float = 0.0) -> ModelBuilder:
    """A small int8 CNN (conv, depthwise, pool, FC, softmax) with random weights.

    Returns the builder with tensors 0 (input) and the last tensor (output) as
    its interface; call `.build([0], [last])`.
    """
    rng = np.random.default_rng(seed)

    def weights(shape, axis_channels):
        w = rng.integers(-127, 128, size=shape).astype(np.int8)
        if sparsity:
            w[rng.random(shape) < sparsity] = 0
        return w, rng.uniform(0.002, 0.01, size=axis_channels).astype(np.float32)

    m = ModelBuilder()
    x = m.tensor("input", [1, 12, 12, 3], scale=0.02, zero_point=-3)
    w1, s1 = weights([8, 3, 3, 3], 8)
    cw = m.tensor("conv/w", w1.shape, scale=s1, zero_point=np.zeros(8), data=w1, axis=0)
    cb = m.tensor("conv/b", [8], "int32", scale=s1 * 0.02, zero_point=np.zeros(8),
                  data=rng.integers(-500, 500, 8))
    c = m.tensor("conv/out", [1, 6, 6, 8], scale=0.05, zero_point=-128)
    m.op("CONV_2D", [x, cw, cb], [c], padding="SAME", strideH=2, strideW=2, fusedActivationFunction="RELU",
         dilationHFactor=1, dilationWFactor=1)
    w2, s2 = weights([1, 3, 3, 8], 8)
    dw = m.tensor("dw/w", w2.shape, scale=s2, zero_point=np.zeros(8), data=w2, axis=3)
    db = m.tensor("dw/b", [8], "int32", scale=s2 * 0.05, zero_point=np.zeros(8), data=rng.integers(-500, 500, 8))
    d = m.tensor("dw/out", [1, 6, 6, 8], scale=0.05, zero_point=-128)
    m.op("DEPTHWISE_CONV_2D", [c, dw, db], [d], padding="SAME", strideH=1, strideW=1, depthMultiplier=1,
         fusedActivationFunction="RELU6", dilationHFactor=1, dilationWFactor=1)
    p = m.tensor("pool/out", [1, 3, 3, 8], scale=0.05, zero_point=-128)
    m.op("AVERAGE_POOL_2D", [d], [p], padding="VALID", strideH=2, strideW=2, filterHeight=2, filterWidth=2)
    shape = m.tensor("flatten/shape", [2], "int32", data=[1, 72])
    f = m.tensor("flatten/out", [1, 72], scale=0.05, zero_point=-128)
    m.op("RESHAPE", [p, shape], [f], newShape=[1, 72])
    w3, s3 = weights([10, 72], 1)
    fw = m.tensor("fc/w", w3.shape, scale=s3, zero_point=[0], data=w3)
    fb = m.tensor("fc/b", [10], "int32", scale=s3 * 0.05, zero_point=[0], data=rng.integers(-500, 500, 10))
    lo = m.tensor("fc/out", [1, 10], scale=0.1, zero_point=5)
    m.op("FULLY_CONNECTED", [f, fw, fb], [lo])
    sm = m.tensor("softmax/out", [1, 10], scale=1 / 256, zero_point=-128)
    m.op("SOFTMAX", [lo], [sm], beta=1.0)
    return m
