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
from ..graph.quant_params import (activation_range, conv_multipliers)
from ..ops import RegistrationError
from . import regular_file_size
from .tflite_checks import (check_padding, check_quantization, check_shape,
                            check_window)
from .tflite_16x8 import rounding_16x8
from .tflite_dilated import fuse_dilated_convs

try:
    import tflite
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

    # -- helpers the operator mappings share (frontends/tflite_ops/, one module per family) --------

    def _broadcastable(self, ins, outs):
        a, b, out = (self.g.tensors[n] for n in (ins[0], ins[1], outs[0]))
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise DmxError(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        if tuple(shape) != out.shape:
            raise DmxError(f"broadcast shape {list(shape)} differs from output shape {list(out.shape)}")
        return a, b, out

    def _const_size(self, name: str, what: str, want: tuple[int, ...]) -> None:
        """A constant int32 shape input (TRANSPOSE_CONV's output_shape, RESIZE_*'s size) equal to `want`."""
        t = self.g.tensors[name]
        if t.data is None or t.dtype != "int32" or t.shape != (len(want),):
            raise DmxError(f"{what} {t.name!r} must be a constant int32 vector of {len(want)}")
        if tuple(int(v) for v in t.data) != want:
            raise DmxError(f"{what} {[int(v) for v in t.data]} differs from the output tensor's {list(want)}")

    def _axes(self, ins) -> tuple[int, ...]:
        inp, ax = self.g.tensors[ins[0]], self.g.tensors[ins[1]]
        if ax.data is None or ax.dtype not in ("int32", "int64"):
            raise DmxError(f"reduction axes {ax.name!r} must be a constant int32 or int64 tensor")
        rank = len(inp.shape)
        bad = [int(a) for a in ax.data.reshape(-1) if not -rank <= a < rank]
        if bad:
            raise DmxError(f"reduction axis {bad[0]} is outside [{-rank}, {rank}) for a {rank}-D input")
        return tuple(sorted({int(a) % rank for a in ax.data.reshape(-1)}))


from . import tflite_ops  # noqa: E402,F401  - every operator's mapping registers here, one module per family

SUPPORTED = tuple(OPERATORS)  # the TFLite operators dmxgen reads
