"""Checks of the fields a .tflite gives, made before anything is computed from them (issue 18).

A hostile or corrupt file may hold any value in any field: a negative or huge dimension, a
padding enum TFLite does not define, a zero point a kernel cannot add without overflow, a
dilation that asks numpy for terabytes. Each check raises a DmxError naming the tensor or the
option; the reader adds the file and the layer.
"""
from __future__ import annotations

import numpy as np

from ..errors import DmxError

# Bounds on what one model may ask for. Real models stay far below them (the largest shared
# model's biggest layer needs ~5 MB of reference scratch and 30 M MACs), and a model beyond
# them would not fit any target dmxgen generates code for.
MAX_TENSOR_BYTES = 1 << 28  # one tensor: 256 MiB
MAX_SCRATCH_BYTES = 1 << 30  # what the reference allocates for one layer (padded input, windows)
MAX_LAYER_MACS = 1 << 33  # multiply-accumulates of one layer
MAX_WINDOW = 1 << 16  # strides, dilations and filter sizes

# Zero points each integer type allows: int16 is symmetric in TFLite, int32 tensors are biases
# (TFLite requires their zero point to be 0). Weights are held to 0 per op.
ZERO_POINT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (0, 0), "int32": (0, 0)}
PADDINGS = {0: "SAME", 1: "VALID"}  # tflite.Padding: nothing else exists


def check_shape(name: str, shape: tuple[int, ...], dtype: str) -> None:
    """Dimensions are known (TFLite writes -1 for a dynamic one) and the tensor has a sane size."""
    bad = [d for d in shape if d < 0]
    if bad:
        raise DmxError(f"tensor {name!r} has dimension {bad[0]} in shape {list(shape)}; "
                       "dynamic or negative shapes are not supported")
    nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize if shape else np.dtype(dtype).itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise DmxError(f"tensor {name!r} of shape {list(shape)} ({dtype}) would take {nbytes:,} bytes, "
                       f"over the {MAX_TENSOR_BYTES:,} one tensor may")


def check_quantization(name: str, dtype: str, shape: tuple[int, ...], scale: np.ndarray, zero_point: np.ndarray,
                       axis: int | None) -> None:
    """Scales finite and positive, one zero point per scale, per-channel counts matching the
    quantized dimension (when the shape has it), zero points in the type's range."""
    with np.errstate(all="ignore"):
        good = np.isfinite(scale) & (scale > 0)
    if not good.all():
        raise DmxError(f"tensor {name!r} has quantization scale {scale[~good][0]}; scales must be finite and positive")
    if zero_point.size not in (1, scale.size):
        raise DmxError(f"tensor {name!r} has {scale.size} quantization scales but {zero_point.size} zero points")
    # A dimension the shape lacks is left alone: TFLM ignores it (tflite-micro's person_detect has
    # 1-D biases saying dimension 3) and weights are checked per op against their channels.
    if axis is not None and 0 <= axis < len(shape):
        if shape[axis] != scale.size:
            raise DmxError(f"tensor {name!r} has {scale.size} quantization scales for the "
                           f"{shape[axis]} entries of its dimension {axis}")
    lo, hi = ZERO_POINT_RANGES.get(dtype, (None, None))
    if lo is not None and not ((zero_point >= lo) & (zero_point <= hi)).all():
        bad = int(zero_point[(zero_point < lo) | (zero_point > hi)][0])
        allowed = f"in [{lo}, {hi}]" if lo != hi else str(lo)
        raise DmxError(f"tensor {name!r} ({dtype}) has zero point {bad}; it must be {allowed}")


def check_padding(padding: int) -> str:
    """The padding enum's name; any other value is refused (LiteRT reads it as 'unknown')."""
    if padding not in PADDINGS:
        raise DmxError(f"padding {padding} is not one TFLite defines (0 SAME, 1 VALID)")
    return PADDINGS[padding]


def check_window(what: str, *values: int) -> None:
    """Strides, dilations and filter sizes: at least 1, at most MAX_WINDOW."""
    for v in values:
        if not 1 <= v <= MAX_WINDOW:
            raise DmxError(f"{what} {v} is outside [1, {MAX_WINDOW}]")


def check_weights(w, what: str = "weight") -> None:
    """Weights the kernels and storage formats read: a constant int8 tensor with values."""
    if w.data is None:
        raise DmxError(f"{what} {w.name!r} must be a constant tensor")
    if w.dtype != "int8":
        raise DmxError(f"{what} {w.name!r} is {w.dtype}; only int8 weights are supported")
    if w.size == 0:
        raise DmxError(f"{what} {w.name!r} of shape {list(w.shape)} holds no values")


def window_scratch(x_shape, out_shape, kh: int, kw: int, channels: int, attrs: dict) -> int:
    """Bytes the reference allocates for a sliding window op: the padded input (int32) and the
    windows it gathers (int64, `channels` wide), computed before either exists."""
    n, oh, ow, _ = out_shape
    sh, sw = attrs["stride"]
    dh, dw = attrs.get("dilation", (1, 1))
    pt, pl, _, _ = attrs["pad"]
    need_h = max(x_shape[1] + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
    need_w = max(x_shape[2] + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
    return n * need_h * need_w * x_shape[3] * 4 + n * oh * ow * kh * kw * channels * 8


def check_work(scratch: int, macs: int) -> None:
    """Refuse a layer the reference could not allocate or finish, before it allocates anything."""
    if scratch > MAX_SCRATCH_BYTES:
        raise DmxError(f"the layer needs {scratch:,} bytes of scratch memory, over the limit of "
                       f"{MAX_SCRATCH_BYTES:,} (check its strides, dilations and padding)")
    if macs > MAX_LAYER_MACS:
        raise DmxError(f"the layer needs {macs:,} multiply-accumulates, over the limit of {MAX_LAYER_MACS:,}")


def check_same_grid(opname: str, inp, out, why: str = "its kernel copies codes") -> None:
    """An operator whose int8 kernel works on the codes themselves (a copy, an interpolation) needs
    its input and output on one per-tensor grid; `why` ends the message."""
    qi, qo = inp.quant, out.quant
    if qi is None or qo is None:
        if (qi is None) != (qo is None):
            raise DmxError(f"{opname}: {'input' if qi is None else 'output'} tensor has no quantization parameters")
        return
    if qi.per_channel or qo.per_channel or (float(qi.s), int(qi.zp)) != (float(qo.s), int(qo.zp)):
        raise DmxError(f"{opname} changes the quantization ({qi.describe()} -> {qo.describe()}); {why}")
