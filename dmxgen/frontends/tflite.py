"""A .tflite flatbuffer -> the integer Graph.

All requantization constants are derived here exactly as TFLite's kernels
derive them in their Prepare step, so the reference and the backends only
ever see integers. `semantics="tflm"` derives them the way TFLite Micro does
where the two differ (see docs/goldens.md).
"""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np

from ..errors import DmxError
from ..graph import Graph, Op, QuantParams, Tensor
from ..graph.quant_params import (ADD_LEFT_SHIFT_INT16, activation_range, add_params, conv_multipliers, mul_params,
                                  pot_int16_shifts, requant_params, softmax_gemmlowp_params, sub_params)
from ..ops import SPECS, RegistrationError
from . import regular_file_size
from . import tflite_slices as slices
from .tflite_checks import (check_padding, check_quantization, check_same_grid, check_shape,
                            check_weights, check_window, check_work, window_scratch)
from .tflite_16x8 import rounding_16x8
from .tflite_dilated import fuse_dilated_convs

try:
    import tflite
    from tflite.ActivationFunctionType import ActivationFunctionType
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.TensorType import TensorType
except ImportError as e:  # pragma: no cover - a dependency of the package
    raise DmxError("the 'tflite' package is missing: run `make setup`") from e

from .tflite_registry import _ACTNAME, _OPNAME, ARITY, MANY_OUTPUTS, OPERATORS, tflite_op  # noqa: E402,F401

_TYPES = {
    TensorType.FLOAT32: "float32", TensorType.INT8: "int8", TensorType.UINT8: "uint8",
    TensorType.INT16: "int16", TensorType.INT32: "int32", TensorType.INT64: "int64",
    TensorType.BOOL: "bool",
}
SEMANTICS = ("tflite", "tflm")
SUPPORT_TABLE = "see 'Supported operators' in README.md"
# why a custom operator is there, for the ones users meet
_CUSTOM_HINTS = {
    "ethos-u": "this model was compiled for an NPU: Vela replaced its layers by one Ethos-U command stream; "
               "give dmxgen the .tflite from before Vela",
}


def load_tflite(path: str | Path, semantics: str = "tflite") -> Graph:
    path = Path(path)
    if semantics not in SEMANTICS:
        raise DmxError(f"unknown semantics {semantics!r}; choose one of {', '.join(SEMANTICS)}")
    buf = _read_flatbuffer(path)
    try:
        reader = _Reader(path, buf, semantics)
        reader.read()
        graph = fuse_dilated_convs(reader)  # SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND as one conv
    except (DmxError, RegistrationError):
        raise
    except Exception as e:  # the flatbuffer library raises anything on bad offsets
        raise DmxError(f"{path}: corrupt or truncated TFLite file ({type(e).__name__}: {e})") from None
    graph.validate()
    return graph


MAX_FLATBUFFER_BYTES = 2**31  # flatbuffers use 32-bit signed offsets: no valid .tflite reaches 2 GiB


def _read_flatbuffer(path: Path) -> bytes:
    """The file's bytes, once it is known to be a plausible flatbuffer: a regular file (not a FIFO,
    which blocks, nor /dev/zero, which never ends) under 2 GiB whose 8-byte header says TFL3."""
    size = regular_file_size(path)
    if size >= MAX_FLATBUFFER_BYTES:
        raise DmxError(f"{path}: {size} bytes is over the 2 GiB a TFLite flatbuffer can hold")
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8 or head[4:8] != b"TFL3":
                raise DmxError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier in the header)")
            return head + f.read()
    except OSError as e:
        raise DmxError(f"{path}: cannot read it: {e.strerror}") from None


def _builtin_code(oc) -> int:
    """The operator an OperatorCode names, by TFLite's rule (schema_utils GetBuiltinCode): the larger
    of builtin_code and deprecated_builtin_code. The tflite package's BuiltinCode() returns the
    deprecated field whenever builtin_code < 127, so the raw field is read from the table."""
    field = oc._tab.Offset(10)  # builtin_code: the schema's 4th field (vtable offset 4 + 2 * 3)
    builtin = oc._tab.Get(flatbuffers.number_types.Int32Flags, field + oc._tab.Pos) if field else 0
    return max(builtin, oc.DeprecatedBuiltinCode())


def _custom_refusal(custom_code: bytes | None) -> str:
    """One line naming a CUSTOM operator by its custom_code, with the reason it is there when known."""
    name = custom_code.decode("utf-8", "replace") if custom_code else ""
    hint = _CUSTOM_HINTS.get(name)
    what = f"custom operator {name!r}" if name else "a custom operator without a name"
    if hint:
        return f"{what} is not supported ({hint})"
    return f"{what} is not supported: give dmxgen its kernel with --custom-ops (docs/custom-ops.md); {SUPPORT_TABLE}"


def _padding(padding: int, in_size: int, filt: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """(out, pad_before, pad_after) as TFLite's ComputePaddingHeightWidth."""
    eff = (filt - 1) * dilation + 1
    if check_padding(padding) == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size + stride - eff) // stride
    total = max(0, (out - 1) * stride + eff - in_size)
    return out, total // 2, total - total // 2


class _Reader:
    def __init__(self, path: Path, buf: bytes, semantics: str):
        self.path, self.buf, self.semantics = path, buf, semantics
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() < 1:
            raise DmxError(f"{path}: the model has no subgraph")
        self.sg = self.model.Subgraphs(0)
        self.g = Graph(source=str(path))
        self.names: dict[int, str] = {}
        from .tflite_packed import read_packed  # weights stored encoded by `dmxgen compress`

        self.packed = read_packed(self.model) if self.model.MetadataLength() else {}

    # -- tensors ---------------------------------------------------------
    def tensor_name(self, idx: int) -> str:
        if idx in self.names:
            return self.names[idx]
        if not 0 <= idx < self.sg.TensorsLength():
            raise DmxError(f"{self.path}: tensor index {idx} does not exist (the subgraph has "
                           f"{self.sg.TensorsLength()} tensors)")
        t = self.sg.Tensors(idx)
        raw = t.Name()
        name = raw.decode("utf-8", "replace") if raw else f"tensor_{idx}"
        if name in self.g.tensors:
            name = f"{name}#{idx}"
        ttype = t.Type()
        if ttype not in _TYPES:
            raise DmxError(f"{self.path}: tensor {name!r} has unsupported type {ttype}")
        dtype = _TYPES[ttype]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        quant = None
        q = t.Quantization()
        try:
            check_shape(name, shape, dtype)
            if q is not None and q.ScaleLength() > 0:
                scale = q.ScaleAsNumpy().astype(np.float32)
                zp = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(1, np.int64)
                axis = int(q.QuantizedDimension()) if scale.size > 1 else None
                check_quantization(name, dtype, shape, scale, zp, axis)
                quant = QuantParams(scale, zp, axis)
        except DmxError as e:
            raise DmxError(f"{self.path}: {e}") from None
        data = None
        bidx = t.Buffer()
        if bidx >= self.model.BuffersLength():  # TFLite refuses it too ("specifies out of range buffer")
            raise DmxError(f"{self.path}: tensor {name!r} refers to buffer {bidx}; the model has "
                           f"{self.model.BuffersLength()}")
        if bidx > 0:
            b = self.model.Buffers(bidx)
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if b.DataLength() > 0:
                raw_bytes = b.DataAsNumpy().tobytes()
                if len(raw_bytes) != expected:
                    raise DmxError(f"{self.path}: tensor {name!r}: buffer holds {len(raw_bytes)} bytes, "
                                   f"shape {list(shape)} of {dtype} needs {expected}")
                data = np.frombuffer(raw_bytes, dtype=dtype).reshape(shape).copy()
            elif b.Offset() > 1:
                start, size = int(b.Offset()), int(b.Size())
                if start + size > len(self.buf):
                    raise DmxError(f"{self.path}: tensor {name!r}: data lies past the end of the file (truncated?)")
                if size != expected:
                    raise DmxError(f"{self.path}: tensor {name!r}: buffer holds {size} bytes, "
                                   f"shape {list(shape)} of {dtype} needs {expected}")
                data = np.frombuffer(self.buf[start:start + size], dtype=dtype).reshape(shape).copy()
        encoded = None
        if idx in self.packed:
            from ..codecs.view import from_matrix

            encoded, op_kind, wshape = self.packed[idx]
            if data is None:
                data = from_matrix(op_kind, encoded.decode(), wshape).astype(dtype)
        self.g.add_tensor(Tensor(name, shape, dtype, quant, data, origin=idx, encoded=encoded))
        self.names[idx] = name
        return name

    def t(self, idx: int) -> Tensor:
        return self.g.tensors[self.tensor_name(idx)]

    # -- ops ---------------------------------------------------------------
    def read(self) -> Graph:
        sg = self.sg
        for i in range(sg.InputsLength()):
            name = self.tensor_name(sg.Inputs(i))
            if self.g.tensors[name].is_const:  # LiteRT segfaults writing into it
                raise DmxError(f"{self.path}: model input {name!r} is a constant tensor (it has data)")
            if name in self.g.inputs:
                raise DmxError(f"{self.path}: tensor {name!r} is listed twice as a model input")
            self.g.inputs.append(name)
        for i in range(sg.OperatorsLength()):
            self.read_op(i, sg.Operators(i))
        if not sg.OutputsLength():
            raise DmxError(f"{self.path}: the model lists no outputs")
        for i in range(sg.OutputsLength()):
            name = self.tensor_name(sg.Outputs(i))
            if name in self.g.outputs:
                raise DmxError(f"{self.path}: tensor {name!r} is listed twice as a model output")
            if self.g.tensors[name].is_const:
                raise DmxError(f"{self.path}: model output {name!r} is a constant tensor, not computed by the model")
            self.g.outputs.append(name)
        return self.g

    def read_op(self, index: int, op) -> None:
        opcode_index = op.OpcodeIndex()
        if opcode_index >= self.model.OperatorCodesLength():
            raise DmxError(f"{self.path}: operator {index} refers to opcode {opcode_index}, which does not exist")
        oc = self.model.OperatorCodes(opcode_index)
        code = _builtin_code(oc)
        if code == BuiltinOperator.CUSTOM:
            self.read_custom(index, op, oc.CustomCode())
            return
        opname = _OPNAME.get(code, f"builtin code {code}")
        if opname not in OPERATORS:
            raise DmxError(f"{self.path}: operator {index} ({opname}) is not supported; {SUPPORT_TABLE}")
        try:
            ins = [self.tensor_name(op.Inputs(j)) if op.Inputs(j) >= 0 else "" for j in range(op.InputsLength())]
            outs = [self.tensor_name(op.Outputs(j)) for j in range(op.OutputsLength())]
        except DmxError as e:  # a bad tensor: say which layer reads it
            reason = str(e).removeprefix(f"{self.path}: ")
            raise DmxError(f"{self.path}: operator {index} ({opname}): {reason}") from None
        handler, kinds = OPERATORS[opname]
        where = f"{self.path}: operator {index} ({opname}, output {outs[0] if outs else '?'!r})"
        try:
            self._check_arity(opname, ins, outs)
            self._check_values(ins[:1], outs)  # before the handler divides by a dimension
            made = handler(self, op, ins, outs)
            made = made if isinstance(made, list) else [(*made, outs)]
            for _, _, op_ins, op_outs in made:
                self._check_values(op_ins, op_outs)
        except DmxError as e:
            raise DmxError(f"{where}: {e}") from None
        for k, (kind, attrs, op_ins, op_outs) in enumerate(made):
            if kind not in kinds:  # a bug in the mapping, not in the model
                raise RegistrationError(f"the {opname} mapping made a {kind} op; it is registered for {', '.join(kinds)}")
            # named after the operator's first kind, so a split kind (requantize) keeps its layer's name;
            # of several ops, the one writing the operator's outputs keeps it, the others get _<k>
            name = f"{kinds[0]}_{index}" if op_outs == outs else f"{kinds[0]}_{index}_{k}"
            self.g.ops.append(Op(name, kind, op_ins, op_outs, attrs))

    def read_custom(self, index: int, op, custom_code: bytes | None) -> None:
        """A CUSTOM operator: the user's implementation when a plugin registered one (ops/custom.py),
        else a one-line refusal naming it."""
        from ..ops.custom import registered

        name = custom_code.decode("utf-8", "replace") if custom_code else ""
        if registered(name) is None:
            raise DmxError(f"{self.path}: operator {index}: {_custom_refusal(custom_code)}")
        where = f"{self.path}: operator {index} (custom operator {name!r})"
        try:
            ins = [self.tensor_name(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
            outs = [self.tensor_name(op.Outputs(j)) for j in range(op.OutputsLength())]
            if len(outs) != 1 or not ins:
                raise DmxError(f"has {len(ins)} inputs and {len(outs)} outputs; custom operators need at least "
                               "one input and exactly one output")
            self._check_values(ins, outs)
        except DmxError as e:
            raise DmxError(f"{where}: {str(e).removeprefix(f'{self.path}: ')}") from None
        options = tuple(int(b) for b in op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else ()
        self.g.ops.append(Op(f"custom_{index}", "custom", ins, outs, {"name": name, "options": options}))

    @staticmethod
    def _check_arity(opname: str, ins: list[str], outs: list[str]) -> None:
        """The inputs an operator reads are there (an absent optional one is ""), and one output."""
        least, most = ARITY[opname]
        if not least <= len(ins) <= most:
            want = str(least) if least == most else f"{least} to {most}"
            raise DmxError(f"has {len(ins)} inputs; {opname} takes {want}")
        missing = [j for j in range(least) if not ins[j]]
        if missing:
            raise DmxError(f"input {missing[0]} is absent (tensor index -1) but required")
        if opname in MANY_OUTPUTS:
            if not outs:
                raise DmxError(f"has no outputs; {opname} writes at least one")
        elif len(outs) != 1:
            raise DmxError(f"has {len(outs)} outputs; dmxgen reads operators with exactly one")

    def _check_values(self, ins: list[str], outs: list[str]) -> None:
        """Every tensor the op kind reads or writes holds at least one value (an empty one divides by
        zero in MEAN and has no maximum in MAX_POOL_2D)."""
        for name in [n for n in ins if n] + outs:
            t = self.g.tensors[name]
            if t.size == 0:
                raise DmxError(f"tensor {name!r} of shape {list(t.shape)} holds no values")

    def options(self, op, cls, required: bool = False):
        """The op's options table of type `cls`; None when absent (and not `required`). A table of
        another type is refused: reading it as `cls` would read garbage, and TFLite ignores it."""
        table = op.BuiltinOptions()
        want = getattr(tflite.BuiltinOptions, cls.__name__)
        if table is not None and op.BuiltinOptionsType() == want:
            o = cls()
            o.Init(table.Bytes, table.Pos)
            return o
        if table is not None and op.BuiltinOptionsType() != 0:
            raise DmxError(f"its options are of type {op.BuiltinOptionsType()}, not {cls.__name__}")
        if required:
            raise DmxError(f"it has no {cls.__name__}")
        return None

    @staticmethod
    def _need_quant(t: Tensor, what: str) -> QuantParams:
        if t.quant is None:
            raise DmxError(f"{what} tensor {t.name!r} ({t.dtype}) has no quantization parameters")
        return t.quant

    def _act(self, fused: int, out: Tensor) -> dict:
        act = _ACTNAME.get(fused, str(fused))
        if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise DmxError(f"fused activation {act} is not supported")
        q = self._need_quant(out, "output")
        info = np.iinfo(out.dtype) if out.dtype in ("int8", "int16") else np.iinfo(np.int8)
        lo, hi = activation_range(act, q.s, q.zp, int(info.min), int(info.max))  # by the output's dtype
        return {"activation": act, "act_min": lo, "act_max": hi}

    def _int8_io(self, ins: list[str], outs: list[str], n_in: int = 1, int16: bool = False) -> None:
        """The first n_in inputs and the output are int8 (or, with `int16`, all int8 or all int16:
        the operators dmxgen runs in TFLite's 16x8 scheme too)."""
        names = ins[:n_in] + outs[:1]
        allowed = ("int8", "int16") if int16 else ("int8",)
        for name in names:
            t = self.g.tensors[name]
            if t.dtype not in allowed:
                raise DmxError(f"tensor {name!r} is {t.dtype}; only {' or '.join(allowed)} is supported for this operator")
        dtypes = {self.g.tensors[n].dtype for n in names}
        if len(dtypes) > 1:
            raise DmxError(f"its tensors mix {' and '.join(sorted(dtypes))}; they must share one dtype")

    def _channel_multipliers(self, inp: Tensor, w: Tensor, out: Tensor, channels: int, axis: int = 0):
        qi, qw, qo = self._need_quant(inp, "input"), self._need_quant(w, "weight"), self._need_quant(out, "output")
        if np.any(qw.zero_point != 0):
            raise DmxError(f"weight tensor {w.name!r} has a nonzero zero point; int8 weights must be symmetric")
        if qw.per_channel and qw.axis != axis:  # LiteRT's conv.cc / depthwise_conv.cc refuse it too
            raise DmxError(f"weight tensor {w.name!r} is quantized along dimension {qw.axis}; "
                           f"its output channels are dimension {axis}")
        if qw.scale.size not in (1, channels):
            raise DmxError(f"weight tensor {w.name!r} has {qw.scale.size} scales for {channels} output channels")
        wscale = qw.scale if qw.scale.size == channels else np.full(channels, qw.scale[0], np.float32)
        # In double, also for FULLY_CONNECTED in LiteRT and TFLM (tests/ops/test_fully_connected.py
        # finds scales where a float32 product s_in * s_w gives another multiplier).
        return conv_multipliers(qi.s, wscale, qo.s)

    def _nhwc(self, ins, outs) -> tuple[Tensor, Tensor]:
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if len(inp.shape) != 4 or len(out.shape) != 4:
            raise DmxError(f"expected 4-D NHWC input and output, got {list(inp.shape)} -> {list(out.shape)}")
        return inp, out

    def _conv_common(self, ins, outs, stride_h, stride_w, dil_h, dil_w, padding, kh, kw):
        inp, out = self._nhwc(ins, outs)
        check_window("stride", stride_h, stride_w)
        check_window("dilation factor", dil_h, dil_w)
        check_window("filter size", kh, kw)
        oh, pt, pb = _padding(padding, inp.shape[1], kh, stride_h, dil_h)
        ow, pl, pr = _padding(padding, inp.shape[2], kw, stride_w, dil_w)
        if (oh, ow) != tuple(out.shape[1:3]):
            raise DmxError(f"output shape {list(out.shape)} does not match the computed spatial size [{oh}, {ow}]")
        return {"stride": (stride_h, stride_w), "dilation": (dil_h, dil_w), "pad": (pt, pl, pb, pr),
                "input_offset": -self._need_quant(inp, "input").zp,
                "output_offset": self._need_quant(out, "output").zp}

    def _bias(self, ins: list[str], channels: int) -> list[str]:
        if len(ins) > 2 and ins[2]:
            b = self.g.tensors[ins[2]]
            wide = self.g.tensors[ins[0]].dtype == "int16"  # 16x8: int64 (or int32), checked by _16x8
            if b.dtype not in (("int64", "int32") if wide else ("int32",)) or b.data is None or b.shape != (channels,):
                raise DmxError(f"bias {b.name!r} ({b.dtype}{list(b.shape)}) must be a constant "
                               f"{'int64' if wide else 'int32'} vector of {channels}")
            return ins[:3]
        return ins[:2] + [""]

    def _16x8(self, opname: str, ins: list[str], axis: int, attrs: dict, o) -> dict:
        """{} for an int8 layer; for a 16x8 one (int16 input) its rounding, after tflite_16x8's checks."""
        if self.g.tensors[ins[0]].dtype != "int16":
            return {}
        bias = self.g.tensors[ins[2]] if len(ins) > 2 and ins[2] else None
        qbt = o.QuantizedBiasType() if o is not None else 0
        return {"rounding": rounding_16x8(opname, self.g.tensors[ins[1]], bias, axis, attrs["shift"], self.semantics,
                                          qbt)}

    # -- one method per TFLite operator -----------------------------------
    @tflite_op("CONV_2D", "conv2d", inputs=(2, 3))
    def op_conv_2d(self, op, ins, outs):
        self._int8_io(ins, outs, int16=True)  # int16: TFLite's 16x8 (tflite_16x8.py)
        o = self.options(op, tflite.Conv2DOptions, required=True)
        w = self.g.tensors[ins[1]]
        check_weights(w)
        if len(w.shape) != 4:
            raise DmxError(f"weight {w.name!r} must be a constant OHWI tensor")
        cout, kh, kw, cin = w.shape
        inp, out = self._nhwc(ins, outs)
        if inp.shape[3] % cin != 0:
            raise DmxError(f"input has {inp.shape[3]} channels, weights expect a multiple of {cin}")
        if inp.shape[3] != cin:
            raise DmxError(f"grouped convolution ({inp.shape[3]} input channels, {cin} per group) is not supported")
        attrs = self._conv_common(ins, outs, o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor(),
                                  o.Padding(), kh, kw)
        check_work(window_scratch(inp.shape, out.shape, kh, kw, cin, attrs), out.size * kh * kw * cin)
        attrs["multiplier"], attrs["shift"] = self._channel_multipliers(inp, w, self.g.tensors[outs[0]], cout)
        attrs.update(self._act(o.FusedActivationFunction(), self.g.tensors[outs[0]]))
        attrs.update(self._16x8("CONV_2D", ins, 0, attrs, o))
        return "conv2d", attrs, self._bias(ins, cout)

    @tflite_op("DEPTHWISE_CONV_2D", "depthwise_conv2d", inputs=(2, 3))
    def op_depthwise_conv_2d(self, op, ins, outs):
        self._int8_io(ins, outs, int16=True)
        o = self.options(op, tflite.DepthwiseConv2DOptions, required=True)
        w = self.g.tensors[ins[1]]
        check_weights(w)
        if len(w.shape) != 4 or w.shape[0] != 1:
            raise DmxError(f"weight {w.name!r} must be a constant [1, kh, kw, C*multiplier] tensor")
        _, kh, kw, cout = w.shape
        inp, out = self._nhwc(ins, outs)
        cin = inp.shape[3]
        if cout % cin != 0:
            raise DmxError(f"{cout} output channels is not a multiple of {cin} input channels")
        attrs = self._conv_common(ins, outs, o.StrideH(), o.StrideW(), o.DilationHFactor(), o.DilationWFactor(),
                                  o.Padding(), kh, kw)
        check_work(window_scratch(inp.shape, out.shape, kh, kw, cout, attrs), out.size * kh * kw)
        attrs["depth_multiplier"] = cout // cin
        attrs["multiplier"], attrs["shift"] = self._channel_multipliers(inp, w, self.g.tensors[outs[0]], cout, axis=3)
        attrs.update(self._act(o.FusedActivationFunction(), self.g.tensors[outs[0]]))
        attrs.update(self._16x8("DEPTHWISE_CONV_2D", ins, 3, attrs, None))  # its options have no bias type
        return "depthwise_conv2d", attrs, self._bias(ins, cout)

    @tflite_op("FULLY_CONNECTED", "fully_connected", inputs=(2, 3))
    def op_fully_connected(self, op, ins, outs):
        self._int8_io(ins, outs, int16=True)
        o = self.options(op, tflite.FullyConnectedOptions)
        w = self.g.tensors[ins[1]]
        check_weights(w)
        if len(w.shape) != 2:
            raise DmxError(f"weight {w.name!r} must be a constant [out, in] matrix")
        if o is not None and o.WeightsFormat() != 0:
            raise DmxError("shuffled FULLY_CONNECTED weights are not supported")
        cout, cin = w.shape
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if inp.size % cin != 0:
            raise DmxError(f"input of {inp.size} values is not a multiple of the weights' {cin} columns")
        check_work(0, inp.size * cout)
        attrs = {"input_offset": -self._need_quant(inp, "input").zp,
                 "output_offset": self._need_quant(out, "output").zp,
                 "batches": inp.size // cin,
                 # LiteRT's reference FC rounds once, TFLite Micro's twice (docs/goldens.md).
                 "rounding": "single" if self.semantics == "tflite" else "double"}
        attrs["multiplier"], attrs["shift"] = self._channel_multipliers(inp, w, out, cout)
        attrs.update(self._act(o.FusedActivationFunction() if o else 0, out))
        attrs.update(self._16x8("FULLY_CONNECTED", ins, 0, attrs, o))
        return "fully_connected", attrs, self._bias(ins, cout)

    # optional inputs lie among the first 20 (CIFG, peephole, projection): read_lstm counts them
    @tflite_op("UNIDIRECTIONAL_SEQUENCE_LSTM", "lstm", inputs=(1, 24))
    def op_unidirectional_sequence_lstm(self, op, ins, outs):
        from .tflite_lstm import read_lstm

        o = self.options(op, tflite.UnidirectionalSequenceLSTMOptions, required=True)
        return read_lstm(self, op, ins, outs, o, _ACTNAME.get(o.FusedActivationFunction(), "?"))

    def _broadcastable(self, ins, outs):
        a, b, out = (self.g.tensors[n] for n in (ins[0], ins[1], outs[0]))
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise DmxError(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        if tuple(shape) != out.shape:
            raise DmxError(f"broadcast shape {list(shape)} differs from output shape {list(out.shape)}")
        return a, b, out

    def _add_sub_scaling(self, opname, o, a, b, out, params) -> dict:
        """ADD / SUB rescaling constants. int16: the general path with left shift 15, or LiteRT's
        power-of-two path when pot_scale_int16 is set (the schema's default) and every scale is a
        power of two (add.cc, sub.cc); TFLite Micro always takes the general path."""
        qa, qb, qo = a.quant, b.quant, out.quant
        if out.dtype != "int16":
            return params(qa.s, qb.s, qo.s)
        shifts = None
        if self.semantics == "tflite" and o is not None and o.PotScaleInt16():
            shifts = pot_int16_shifts(qa.s, qb.s, qo.s, opname)
        if shifts is None:
            general = params(qa.s, qb.s, qo.s, left_shift=ADD_LEFT_SHIFT_INT16)
            if general["output_shift"] > 0:  # QuantizeMultiplierSmallerThanOneExp aborts (SUB's refuses earlier)
                raise DmxError(f"int16 {opname} output scale {qo.s:g} is too small for input scales {qa.s:g} and "
                               f"{qb.s:g}: the output multiplier is not below 1, which TFLite cannot compute")
            return general
        if opname == "ADD" and a.shape != b.shape:  # add.cc runs reference_ops::Add, elementwise only
            raise DmxError("LiteRT's int16 ADD with power-of-two scales (pot_scale_int16) does not broadcast "
                           f"{list(a.shape)} and {list(b.shape)}")
        return {"scaling": "pot", "left_shift": 0, "input1_multiplier": 0, "input2_multiplier": 0,
                "output_multiplier": 0, "output_shift": 0, **shifts}

    @tflite_op("ADD", "add", inputs=(2, 2))
    def op_add(self, op, ins, outs):
        self._int8_io(ins, outs, 2, int16=True)  # int16: TFLite's 16x8 ADD
        a, b, out = self._broadcastable(ins, outs)
        qa, qb, qo = (self._need_quant(t, "ADD") for t in (a, b, out))
        o = self.options(op, tflite.AddOptions)
        attrs = {"input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp,
                 **self._add_sub_scaling("ADD", o, a, b, out, add_params)}
        attrs.update(self._act(o.FusedActivationFunction() if o else 0, out))
        return "add", attrs, ins[:2]

    @tflite_op("MUL", "mul", inputs=(2, 2))
    def op_mul(self, op, ins, outs):
        self._int8_io(ins, outs, 2, int16=True)  # int16: TFLite's 16x8 MUL (the same arithmetic)
        a, b, out = self._broadcastable(ins, outs)
        qa, qb, qo = (self._need_quant(t, "MUL") for t in (a, b, out))
        o = self.options(op, tflite.MulOptions)
        attrs = {"input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp,
                 **mul_params(qa.s, qb.s, qo.s, float32_product=self.semantics == "tflite")}
        if out.dtype == "int16" and attrs["output_shift"] > 0:  # a left shift of a product up to 2^30
            raise DmxError(f"int16 MUL multiplier {qa.s * qb.s / qo.s:g} is 1 or more: TFLite shifts the product "
                           "of two int16 codes left, which overflows int32")
        attrs.update(self._act(o.FusedActivationFunction() if o else 0, out))
        return "mul", attrs, ins[:2]

    @tflite_op("SUB", "sub", inputs=(2, 2))
    def op_sub(self, op, ins, outs):
        self._int8_io(ins, outs, 2, int16=True)  # int16: TFLite's 16x8 SUB
        a, b, out = self._broadcastable(ins, outs)
        qa, qb, qo = (self._need_quant(t, "SUB") for t in (a, b, out))
        o = self.options(op, tflite.SubOptions)  # pot_scale_int16 concerns int16 SUB only
        attrs = {"input1_offset": -qa.zp, "input2_offset": -qb.zp, "output_offset": qo.zp,
                 **self._add_sub_scaling("SUB", o, a, b, out, sub_params)}
        attrs.update(self._act(o.FusedActivationFunction() if o else 0, out))
        return "sub", attrs, ins[:2]

    @tflite_op("MAXIMUM", "maximum", inputs=(2, 2))
    def op_maximum(self, op, ins, outs):
        return self._select(op, ins, outs, "maximum")

    @tflite_op("MINIMUM", "minimum", inputs=(2, 2))
    def op_minimum(self, op, ins, outs):
        return self._select(op, ins, outs, "minimum")

    def _select(self, op, ins, outs, kind):
        """MAXIMUM / MINIMUM compare codes: TFLite gives the output the inputs' grid, so all three must agree."""
        self._int8_io(ins, outs, 2)
        self.options(op, tflite.MaximumMinimumOptions)  # an empty table; another type is refused
        a, b, out = self._broadcastable(ins, outs)
        qs = [self._need_quant(t, kind.upper()) for t in (a, b, out)]
        if any(q.per_channel for q in qs) or len({(np.float32(q.s), q.zp) for q in qs}) != 1:
            raise DmxError(f"{kind.upper()} needs its inputs and output on one quantization grid, got "
                           f"{qs[0].describe()}, {qs[1].describe()} -> {qs[2].describe()}")
        return kind, {}, ins[:2]

    def _pool(self, op, ins, outs, kind):
        self._int8_io(ins, outs, int16=True)  # int16: TFLite's 16x8 pooling (same sums, rounding, clamps)
        o = self.options(op, tflite.Pool2DOptions, required=True)
        inp, out = self._nhwc(ins, outs)
        qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
        if qi.s != qo.s or qi.zp != qo.zp:
            raise DmxError("input and output quantization differ; TFLite requires them equal for pooling")
        kh, kw = o.FilterHeight(), o.FilterWidth()
        check_window("filter size", kh, kw)
        check_window("stride", o.StrideH(), o.StrideW())
        oh, pt, pb = _padding(o.Padding(), inp.shape[1], kh, o.StrideH(), 1)
        ow, pl, pr = _padding(o.Padding(), inp.shape[2], kw, o.StrideW(), 1)
        if (oh, ow) != tuple(out.shape[1:3]):
            raise DmxError(f"output shape {list(out.shape)} does not match the computed spatial size [{oh}, {ow}]")
        attrs = {"filter": (kh, kw), "stride": (o.StrideH(), o.StrideW()), "pad": (pt, pl, pb, pr)}
        check_work(window_scratch(inp.shape, out.shape, kh, kw, inp.shape[3], attrs), out.size * kh * kw)
        attrs.update(self._act(o.FusedActivationFunction(), out))
        return kind, attrs, ins[:1]

    @tflite_op("AVERAGE_POOL_2D", "avg_pool2d", inputs=(1, 1))
    def op_average_pool_2d(self, op, ins, outs):
        return self._pool(op, ins, outs, "avg_pool2d")

    @tflite_op("MAX_POOL_2D", "max_pool2d", inputs=(1, 1))
    def op_max_pool_2d(self, op, ins, outs):
        return self._pool(op, ins, outs, "max_pool2d")

    @tflite_op("RESHAPE", "reshape", inputs=(1, 2))
    def op_reshape(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if inp.size != out.size:
            raise DmxError(f"reshape from {list(inp.shape)} to {list(out.shape)} changes the element count")
        if inp.dtype != out.dtype:
            raise DmxError("reshape changes the dtype")
        return "reshape", {}, ins[:1]

    @tflite_op("TRANSPOSE", "transpose", inputs=(2, 2))
    def op_transpose(self, op, ins, outs):
        self._int8_io(ins, outs, int16=True)
        inp, out, perm = self.g.tensors[ins[0]], self.g.tensors[outs[0]], self.g.tensors[ins[1]]
        if perm.data is None or perm.dtype not in ("int32", "int64") or perm.data.ndim != 1:
            raise DmxError(f"permutation {perm.name!r} must be a constant 1-D int32 or int64 tensor")
        self._need_quant(inp, "input")
        self._need_quant(out, "output")
        check_same_grid("TRANSPOSE", inp, out)
        rank = len(inp.shape)
        p = [int(v) + rank if int(v) < 0 else int(v) for v in perm.data]  # TFLite allows negative dims
        return "transpose", {"perm": tuple(p)}, ins[:1]

    def _const_size(self, name: str, what: str, want: tuple[int, ...]) -> None:
        """A constant int32 shape input (TRANSPOSE_CONV's output_shape, RESIZE_*'s size) equal to `want`."""
        t = self.g.tensors[name]
        if t.data is None or t.dtype != "int32" or t.shape != (len(want),):
            raise DmxError(f"{what} {t.name!r} must be a constant int32 vector of {len(want)}")
        if tuple(int(v) for v in t.data) != want:
            raise DmxError(f"{what} {[int(v) for v in t.data]} differs from the output tensor's {list(want)}")

    @tflite_op("TRANSPOSE_CONV", "transpose_conv", inputs=(3, 4))
    def op_transpose_conv(self, op, ins, outs):
        shape, wname, x = ins[0], ins[1], ins[2]
        self._int8_io([x], outs, int16=True)  # int16: TFLite's 16x8 (int64 bias and accumulators)
        o = self.options(op, tflite.TransposeConvOptions, required=True)
        w = self.g.tensors[wname]
        check_weights(w)
        if len(w.shape) != 4:
            raise DmxError(f"weight {w.name!r} must be a constant OHWI tensor")
        cout, kh, kw, cin = w.shape
        inp, out = self._nhwc([x], outs)
        if inp.shape[3] != cin:
            raise DmxError(f"input has {inp.shape[3]} channels, weights expect {cin}")
        if out.shape[3] != cout or out.shape[0] != inp.shape[0]:
            raise DmxError(f"output shape {list(out.shape)} should have batch {inp.shape[0]} and {cout} channels")
        self._const_size(shape, "output_shape", out.shape)
        check_window("stride", o.StrideH(), o.StrideW())
        check_window("filter size", kh, kw)
        # Prepare: the padding of the forward conv from the output's size (ComputePaddingHeightWidth);
        # the kernel offsets the scatter by its "before" half only.
        want_h, pt, _ = _padding(o.Padding(), out.shape[1], kh, o.StrideH(), 1)
        want_w, pl, _ = _padding(o.Padding(), out.shape[2], kw, o.StrideW(), 1)
        if self.semantics == "tflite" and (want_h, want_w) != inp.shape[1:3]:  # LiteRT's Prepare; TFLM runs it
            raise DmxError(f"input {list(inp.shape)} should be {want_h}x{want_w} for output_shape "
                           f"{list(out.shape)} with this padding and stride (LiteRT refuses it; TFLite Micro "
                           "runs it: --semantics tflm)")
        check_work(out.size * 8 + inp.size // cin * cout * 8, inp.size * kh * kw * cout)
        attrs = {"stride": (o.StrideH(), o.StrideW()), "pad": (pt, pl),
                 "input_offset": -self._need_quant(inp, "input").zp,
                 "output_offset": self._need_quant(out, "output").zp}
        attrs["multiplier"], attrs["shift"] = self._channel_multipliers(inp, w, out, cout)
        attrs.update(self._act(o.FusedActivationFunction(), out))
        bias = self._bias([x, wname] + ins[3:4], cout)
        if inp.dtype == "int16":  # the int64 bias, accumulator bound and shifts of tflite_16x8 (rounding: reduced)
            b = self.g.tensors[bias[2]] if bias[2] else None
            if b is not None and b.dtype != "int64":  # LiteRT runs it, on garbage: the kernel reads int64
                raise DmxError(f"bias {b.name!r} of a 16x8 TRANSPOSE_CONV is {b.dtype}; LiteRT and TFLite Micro "
                               "read it as int64: it must be int64")
            rounding_16x8("TRANSPOSE_CONV", w, b, 0, attrs["shift"], self.semantics)
        return "transpose_conv", attrs, bias

    def _resize(self, op, ins, outs, cls, name: str) -> dict:
        self._int8_io(ins, outs, int16=name == "RESIZE_NEAREST_NEIGHBOR")  # int16: a copy of codes too
        inp, out = self._nhwc(ins, outs)
        self._const_size(ins[1], "size", out.shape[1:3])
        self._need_quant(inp, "input")
        self._need_quant(out, "output")
        check_same_grid(name, inp, out, "its int8 kernel interpolates codes")
        o = self.options(op, cls)
        return {"align_corners": int(bool(o and o.AlignCorners())),
                "half_pixel_centers": int(bool(o and o.HalfPixelCenters()))}

    @tflite_op("RESIZE_NEAREST_NEIGHBOR", "resize_nearest", inputs=(2, 2))
    def op_resize_nearest_neighbor(self, op, ins, outs):
        attrs = self._resize(op, ins, outs, tflite.ResizeNearestNeighborOptions, "RESIZE_NEAREST_NEIGHBOR")
        return "resize_nearest", attrs, ins[:1]

    @tflite_op("RESIZE_BILINEAR", "resize_bilinear", inputs=(2, 2))
    def op_resize_bilinear(self, op, ins, outs):
        attrs = self._resize(op, ins, outs, tflite.ResizeBilinearOptions, "RESIZE_BILINEAR")
        if attrs["align_corners"] and attrs["half_pixel_centers"]:  # LiteRT's Prepare refuses it too
            raise DmxError("align_corners and half_pixel_centers are both set; RESIZE_BILINEAR allows one")
        return "resize_bilinear", attrs, ins[:1]

    # -- slices, splits, squeezes and concatenation: they copy codes (tflite_slices.py) ------------
    def _slice_op(self, opname: str, inp: Tensor, out: Tensor, r) -> tuple:
        if r.out_shape != out.shape:
            raise DmxError(f"output shape {list(out.shape)} differs from the computed {list(r.out_shape)}")
        check_same_grid(opname, inp, out)
        return "strided_slice", {"begin": r.begin, "end": r.end, "step": r.step}, [inp.name]

    @tflite_op("STRIDED_SLICE", "strided_slice", inputs=(4, 4))
    def op_strided_slice(self, op, ins, outs):
        self._int8_io(ins, outs, int16=True)
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        begin, end, strides = (slices.const_ints(self.g.tensors[n], w) for n, w in zip(ins[1:], ("begin", "end", "strides")))
        o = self.options(op, tflite.StridedSliceOptions)
        masks = {} if o is None else {
            "begin_mask": o.BeginMask(), "end_mask": o.EndMask(), "ellipsis_mask": o.EllipsisMask(),
            "new_axis_mask": o.NewAxisMask(), "shrink_axis_mask": o.ShrinkAxisMask(),
            "offset": bool(o.Offset()) if hasattr(o, "Offset") else False}
        return self._slice_op("STRIDED_SLICE", inp, out, slices.strided_slice(inp.shape, begin, end, strides, **masks))

    @tflite_op("SLICE", "strided_slice", inputs=(3, 3))
    def op_slice(self, op, ins, outs):
        self._int8_io(ins, outs, int16=True)
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        begin, size = (slices.const_ints(self.g.tensors[n], w) for n, w in zip(ins[1:], ("begin", "size")))
        return self._slice_op("SLICE", inp, out, slices.slice_(inp.shape, begin, size))

    @staticmethod
    def _split_axis(inp: Tensor, axis_t: Tensor) -> int:
        rank = len(inp.shape)
        axis = slices.const_ints(axis_t, "axis")
        if len(axis) != 1 or not -rank <= axis[0] < rank:
            raise DmxError(f"axis {axis} must be one value in [{-rank}, {rank})")
        return axis[0] % rank

    def _split(self, opname: str, inp: Tensor, axis: int, sizes, outs) -> list:
        if len(sizes) != len(outs):
            raise DmxError(f"{len(sizes)} pieces but {len(outs)} output tensors")
        made = []
        for r, name in zip(slices.split(inp.shape, axis, sizes), outs):
            self._int8_io([inp.name], [name], int16=True)
            made.append((*self._slice_op(opname, inp, self.g.tensors[name], r), [name]))
        return made

    @tflite_op("SPLIT", "strided_slice", inputs=(2, 2), many_outputs=True)
    def op_split(self, op, ins, outs):
        axis_t, inp = self.g.tensors[ins[0]], self.g.tensors[ins[1]]
        self._int8_io([inp.name], [], int16=True)
        o = self.options(op, tflite.SplitOptions)
        n = o.NumSplits() if o is not None else len(outs)
        axis = self._split_axis(inp, axis_t)
        dim = inp.shape[axis]
        if n != len(outs) or n < 1 or dim % n:
            raise DmxError(f"num_splits {n} must equal the {len(outs)} outputs and divide the axis' {dim} elements")
        return self._split("SPLIT", inp, axis, [dim // n] * n, outs)

    @tflite_op("SPLIT_V", "strided_slice", inputs=(3, 3), many_outputs=True)
    def op_split_v(self, op, ins, outs):
        inp, axis_t = self.g.tensors[ins[0]], self.g.tensors[ins[2]]
        self._int8_io([inp.name], [], int16=True)
        sizes = slices.const_ints(self.g.tensors[ins[1]], "size_splits")
        axis = self._split_axis(inp, axis_t)
        dim = inp.shape[axis]
        if sizes.count(-1) == 1:  # one size left for TFLite to infer
            sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
        if any(s < 0 for s in sizes) or sum(sizes) != dim:
            raise DmxError(f"size_splits {sizes} do not add up to the axis' {dim} elements")
        return self._split("SPLIT_V", inp, axis, sizes, outs)

    def _reshape_to(self, opname: str, ins, outs, want) -> tuple:
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if tuple(want) != out.shape:
            raise DmxError(f"output shape {list(out.shape)} differs from the computed {list(want)}")
        if inp.dtype != out.dtype:
            raise DmxError(f"{opname} changes the dtype")
        check_same_grid(opname, inp, out)
        return "reshape", {}, ins[:1]

    @tflite_op("SQUEEZE", "reshape", inputs=(1, 1))
    def op_squeeze(self, op, ins, outs):
        shape = self.g.tensors[ins[0]].shape
        o = self.options(op, tflite.SqueezeOptions)
        dims = [int(d) for d in o.SqueezeDimsAsNumpy()] if o is not None and o.SqueezeDimsLength() else []
        bad = [d for d in dims if not -len(shape) <= d < len(shape) or shape[d] != 1]
        if bad:
            raise DmxError(f"squeeze_dims {dims}: dim {bad[0]} is not a dim of size 1 of {list(shape)}")
        drop = {d % len(shape) for d in dims} if dims else {i for i, d in enumerate(shape) if d == 1}
        return self._reshape_to("SQUEEZE", ins, outs, [d for i, d in enumerate(shape) if i not in drop])

    @tflite_op("EXPAND_DIMS", "reshape", inputs=(2, 2))
    def op_expand_dims(self, op, ins, outs):
        shape = list(self.g.tensors[ins[0]].shape)
        axis = slices.const_ints(self.g.tensors[ins[1]], "axis")
        if len(axis) != 1 or not -len(shape) - 1 <= axis[0] <= len(shape):
            raise DmxError(f"axis {axis} must be one value in [{-len(shape) - 1}, {len(shape)}]")
        at = axis[0] + len(shape) + 1 if axis[0] < 0 else axis[0]
        return self._reshape_to("EXPAND_DIMS", ins, outs, shape[:at] + [1] + shape[at:])

    @tflite_op("CONCATENATION", "concat", "requantize", inputs=(1, 4096))
    def op_concatenation(self, op, ins, outs):
        self._int8_io(ins, outs, len(ins), int16=True)
        out = self.g.tensors[outs[0]]
        o = self.options(op, tflite.ConcatenationOptions)
        if o is not None and o.FusedActivationFunction() != ActivationFunctionType.NONE:
            raise DmxError(f"fused activation {_ACTNAME.get(o.FusedActivationFunction())} is not supported "
                           "(only NONE)")
        rank, axis = len(out.shape), o.Axis() if o is not None else 0
        if not -rank <= axis < rank:
            raise DmxError(f"axis {axis} is outside [{-rank}, {rank})")
        qo = self._need_quant(out, "output")
        made, names = [], []
        for k, name in enumerate(ins):  # an input on another grid is requantized first, as torch.cat's export does
            qi = self._need_quant(self.g.tensors[name], "input")
            if (np.float32(qi.s), qi.zp) == (np.float32(qo.s), qo.zp):
                names.append(name)
                continue
            t = self.g.tensors[name]
            moved = f"{outs[0]}.in{k}"
            self.g.add_tensor(Tensor(moved, t.shape, "int8", QuantParams(qo.scale, qo.zero_point)))
            m, s = requant_params(qi.s, qo.s)
            made.append(("requantize", {"input_offset": -qi.zp, "output_offset": qo.zp, "multiplier": m, "shift": s},
                         [name], [moved]))
            names.append(moved)
        return made + [("concat", {"axis": axis % rank}, names, outs)]

    @tflite_op("BATCH_MATMUL", "batch_matmul", inputs=(2, 2))
    def op_batch_matmul(self, op, ins, outs):
        from ..graph.quant_params import batch_matmul_params

        self._int8_io(ins, outs, 2)
        o = self.options(op, tflite.BatchMatMulOptions)
        (lhs, rhs), out = (self.g.tensors[n] for n in ins[:2]), self.g.tensors[outs[0]]
        for side, t in (("lhs", lhs), ("rhs", rhs)):
            if t.is_const:  # the kernels take two activations; a constant rhs is a FULLY_CONNECTED
                raise DmxError(f"{side} {t.name!r} is a constant; BATCH_MATMUL of a constant is not supported")
        qa, qb, qo = (self._need_quant(t, side) for t, side in ((lhs, "lhs"), (rhs, "rhs"), (out, "output")))
        for t, q in ((lhs, qa), (rhs, qb), (out, qo)):
            if q.per_channel:  # TFLite's int8 kernel reads one scale per tensor
                raise DmxError(f"tensor {t.name!r} is quantized per channel; BATCH_MATMUL takes one scale per tensor")
        adj_x, adj_y = (int(o.AdjX()), int(o.AdjY())) if o is not None else (0, 0)
        attrs = {"adj_x": adj_x, "adj_y": adj_y, "lhs_offset": -qa.zp, "rhs_offset": -qb.zp,
                 "output_offset": qo.zp, "act_min": -128, "act_max": 127,  # no fused activation
                 **batch_matmul_params(qa.s, qb.s, qo.s)}
        return "batch_matmul", attrs, ins[:2]

    @tflite_op("SOFTMAX", "softmax", "softmax_gemmlowp", "softmax16", inputs=(1, 1))
    def op_softmax(self, op, ins, outs):
        if self.g.tensors[ins[0]].dtype == "int16":  # TFLite's int16 kernel (its own tables)
            from .tflite_ops.activations16 import op_softmax16
            return op_softmax16(self, op, ins, outs)
        self._int8_io(ins, outs)
        o = self.options(op, tflite.SoftmaxOptions, required=True)
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
        if qo.zp != -128 or abs(float(qo.s) - 1 / 256) > 1e-9:
            raise DmxError(f"int8 softmax output must have scale 1/256 and zero point -128, got {qo.describe()}")
        beta = float(o.Beta())
        if not np.isfinite(beta):
            raise DmxError(f"softmax beta {beta} is not a finite number")
        if beta * float(qi.s) * (1 << 26) <= 1.0:  # LiteRT and TFLM abort (QuantizeMultiplierGreaterThanOne)
            raise DmxError(f"softmax beta {beta:g} times input scale {float(qi.s):g} is below 2^-26, "
                           "which TFLite's softmax cannot prepare")
        attrs = {"beta": beta, "input_scale": float(qi.s)}
        if self.semantics == "tflm":  # TFLite Micro's integer-only softmax
            attrs.update(softmax_gemmlowp_params(beta, float(qi.s)))
            return "softmax_gemmlowp", attrs, ins[:1]
        # TFLite's int8 softmax (even with reference kernels) uses a float
        # exp table of 256 entries: table[255 - d] = expf(-scale*beta*d).
        attrs["table"] = _softmax_float_table(beta, float(qi.s))
        attrs["output_scale"] = float(qo.s)
        return "softmax", attrs, ins[:1]

    @tflite_op("QUANTIZE", "quantize", "requantize", inputs=(1, 1))
    def op_quantize(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if out.dtype not in ("int8", "int16"):
            raise DmxError(f"QUANTIZE to {out.dtype} is not supported, only to int8 or int16")
        qo = self._need_quant(out, "output")
        if qo.per_channel:
            raise DmxError("per-channel QUANTIZE is not supported")
        if inp.dtype == "float32":
            return "quantize", {"scale": float(qo.s), "zero_point": qo.zp}, ins[:1]
        if inp.dtype in ("int8", "int16"):
            qi = self._need_quant(inp, "input")
            m, s = requant_params(qi.s, qo.s)
            return "requantize", {"input_offset": -qi.zp, "output_offset": qo.zp, "multiplier": m, "shift": s}, ins[:1]
        raise DmxError(f"QUANTIZE from {inp.dtype} is not supported (float32, int8 or int16)")

    @tflite_op("DEQUANTIZE", "dequantize", inputs=(1, 1))
    def op_dequantize(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if inp.dtype not in ("int8", "int16") or out.dtype != "float32":
            raise DmxError(f"DEQUANTIZE {inp.dtype} -> {out.dtype} is not supported, only int8 or int16 -> float32")
        qi = self._need_quant(inp, "input")
        if qi.per_channel:
            raise DmxError("per-channel DEQUANTIZE is not supported")
        return "dequantize", {"scale": float(qi.s), "zero_point": qi.zp}, ins[:1]

    @tflite_op("PAD", "pad", inputs=(2, 2))
    def op_pad(self, op, ins, outs, value=None):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        p = self._pad_amounts(ins, outs)
        if inp.dtype != out.dtype:
            raise DmxError(f"PAD changes the dtype ({inp.dtype} -> {out.dtype})")
        if inp.dtype in ("int8", "int16"):
            pad_value = self._need_quant(out, "output").zp if value is None else value
        elif inp.dtype == "float32":
            pad_value = 0.0 if value is None else value
        else:
            raise DmxError(f"PAD of {inp.dtype} is not supported")
        return "pad", {"paddings": tuple(map(tuple, p.tolist())), "value": pad_value}, ins[:1]

    @tflite_op("MIRROR_PAD", "mirror_pad", inputs=(2, 2))
    def op_mirror_pad(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        p = self._pad_amounts(ins, outs)
        if inp.dtype != "int8" or out.dtype != "int8":
            raise DmxError(f"MIRROR_PAD of {inp.dtype} -> {out.dtype} is not supported (int8 only)")
        qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
        if qi.s != qo.s or qi.zp != qo.zp:
            raise DmxError("MIRROR_PAD with different input and output quantization is not supported")
        o = self.options(op, tflite.MirrorPadOptions)
        mirror = "symmetric" if o is not None and o.Mode() == tflite.MirrorPadMode.SYMMETRIC else "reflect"
        return "mirror_pad", {"paddings": tuple(map(tuple, p.tolist())), "mirror": mirror}, ins[:1]

    def _pad_amounts(self, ins, outs) -> np.ndarray:
        """PAD's and MIRROR_PAD's [rank, 2] constant amounts, checked against the output's shape."""
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        pads = self.g.tensors[ins[1]]
        if pads.data is None or pads.dtype not in ("int32", "int64"):
            raise DmxError(f"padding amounts {pads.name!r} must be a constant int32 or int64 tensor")
        if pads.shape != (len(inp.shape), 2):
            raise DmxError(f"padding amounts of shape {list(pads.shape)} for a {len(inp.shape)}-D input; "
                           f"TFLite needs [{len(inp.shape)}, 2]")
        p = pads.data.reshape(-1, 2).astype(np.int64)
        if (p < 0).any():
            raise DmxError(f"negative padding {int(p.min())}")
        want = tuple(int(d + a + b) for d, (a, b) in zip(inp.shape, p))
        if want != out.shape:
            raise DmxError(f"padded shape {list(want)} differs from output shape {list(out.shape)}")
        return p

    @tflite_op("PADV2", "pad", inputs=(3, 3))
    def op_padv2(self, op, ins, outs):
        c = self.g.tensors[ins[2]]
        if c.data is None or c.size != 1:
            raise DmxError(f"PADV2's constant value {c.name!r} must be a constant of one value")
        if c.dtype != self.g.tensors[ins[0]].dtype:
            raise DmxError(f"PADV2's constant value is {c.dtype}, its input {self.g.tensors[ins[0]].dtype}")
        v = c.data.reshape(-1)[0]
        if c.dtype in ("int8", "int16"):
            qc, qo = self._need_quant(c, "PADV2 constant"), self._need_quant(self.g.tensors[outs[0]], "output")
            if qc.zp != qo.zp or qc.s != qo.s:  # LiteRT and TFLM refuse this too (pad.cc, pad_common.cc)
                raise DmxError(f"PADV2's constant {c.name!r} is quantized ({qc.describe()}) unlike the output "
                               f"({qo.describe()})")
        return self.op_pad(op, ins, outs, value=float(v) if c.dtype == "float32" else int(v))

    def _axes(self, ins) -> tuple[int, ...]:
        inp, ax = self.g.tensors[ins[0]], self.g.tensors[ins[1]]
        if ax.data is None or ax.dtype not in ("int32", "int64"):
            raise DmxError(f"reduction axes {ax.name!r} must be a constant int32 or int64 tensor")
        rank = len(inp.shape)
        bad = [int(a) for a in ax.data.reshape(-1) if not -rank <= a < rank]
        if bad:
            raise DmxError(f"reduction axis {bad[0]} is outside [{-rank}, {rank}) for a {rank}-D input")
        return tuple(sorted({int(a) % rank for a in ax.data.reshape(-1)}))

    @tflite_op("REDUCE_MAX", "reduce_max", inputs=(2, 2))
    def op_reduce_max(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if inp.dtype not in ("int8", "float32") or inp.dtype != out.dtype:
            raise DmxError(f"REDUCE_MAX of {inp.dtype} -> {out.dtype} is not supported")
        if inp.dtype == "int8":
            qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
            if qi.s != qo.s or qi.zp != qo.zp:
                raise DmxError("int8 REDUCE_MAX with different input and output quantization is not supported")
        return "reduce_max", {"axes": self._axes(ins)}, ins[:1]

    @tflite_op("REDUCE_MIN", "reduce_min", inputs=(2, 2))
    def op_reduce_min(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        if inp.dtype != "int8" or out.dtype != "int8":
            raise DmxError(f"REDUCE_MIN of {inp.dtype} -> {out.dtype} is not supported (int8 only)")
        qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
        if qi.s != qo.s or qi.zp != qo.zp:
            raise DmxError("REDUCE_MIN with different input and output quantization is not supported")
        return "reduce_min", {"axes": self._axes(ins)}, ins[:1]

    @tflite_op("MEAN", "mean", "mean_float", inputs=(2, 2))
    def op_mean(self, op, ins, outs):
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        axes = self._axes(ins)
        if inp.dtype == "float32":
            return "mean_float", {"axes": axes}, ins[:1]
        self._int8_io(ins, outs, int16=True)  # int16: TFLite's 16x8 MEAN (the same QuantizedMeanOrSum)
        qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
        count = int(np.prod([inp.shape[a] for a in axes]))
        attrs = {"axes": axes, "input_offset": -qi.zp, "output_offset": qo.zp, "count": count}
        # Prepare: (multiplier, shift) of s_in / s_out. Eval (QuantizedMeanOrSum) folds
        # 1/count into it: shift by floor(log2(count)) (at most 32 and 31 + shift),
        # integer-divide the widened multiplier by count. Checked against LiteRT and TFLM.
        m, s = requant_params(qi.s, qo.s)
        attrs["multiplier"], attrs["shift"] = m, s
        fold = min(count.bit_length() - 1, 32, 31 + s)
        attrs["mean_multiplier"], attrs["mean_shift"] = (m << fold) // count, s - fold
        return "mean", attrs, ins[:1]

    @tflite_op("PRELU", "prelu", inputs=(2, 2))
    def op_prelu(self, op, ins, outs):
        from .tflite_prelu import prelu_attrs  # the broadcast alpha as a repeating table

        self._int8_io(ins, outs, 2)
        inp, alpha, out = (self.g.tensors[n] for n in (ins[0], ins[1], outs[0]))
        qi, qa, qo = self._need_quant(inp, "input"), self._need_quant(alpha, "alpha"), self._need_quant(out, "output")
        return "prelu", prelu_attrs(inp, alpha, out, qi, qa, qo, float32=self.semantics == "tflite"), ins[:1]

    @tflite_op("LEAKY_RELU", "prelu", inputs=(1, 1))
    def op_leaky_relu(self, op, ins, outs):
        from .tflite_prelu import leaky_relu_attrs

        self._int8_io(ins, outs, int16=True)  # int16: QuantizeLeakyRelu<int16_t>, the same multipliers
        o = self.options(op, tflite.LeakyReluOptions, required=True)
        inp, out = self.g.tensors[ins[0]], self.g.tensors[outs[0]]
        qi, qo = self._need_quant(inp, "input"), self._need_quant(out, "output")
        return "prelu", leaky_relu_attrs(float(o.Alpha()), inp, out, qi, qo, self.semantics == "tflite"), ins[:1]



from . import tflite_ops  # noqa: E402,F401  - the operator families mapped outside _Reader register here

SUPPORTED = tuple(OPERATORS)  # the TFLite operators dmxgen reads


def _softmax_float_table(beta: float, input_scale: float) -> np.ndarray:
    """TFLite's PopulateSoftmaxLookupTable, computed with float32 arithmetic and libm's expf."""
    from .._libm import expf

    with np.errstate(over="ignore"):  # float32 overflow to -inf is C's too: expf(-inf) is 0
        scale = np.float32(-np.float32(input_scale) * np.float32(beta))
        if not np.isfinite(scale):
            raise DmxError(f"softmax beta {beta:g} times input scale {input_scale:g} overflows float32")
        table = np.zeros(256, np.float32)
        for val in range(256):
            table[255 - val] = expf(np.float32(scale * np.float32(val)))
    return table
