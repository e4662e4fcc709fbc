"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR."""
from __future__ import annotations

import tflite

from ...errors import DmxError
from ..tflite_checks import (check_same_grid)
from ..tflite_registry import tflite_op


def _resize(reader, op, ins, outs, cls, name: str) -> dict:
    reader._int8_io(ins, outs, int16=name == "RESIZE_NEAREST_NEIGHBOR")  # int16: a copy of codes too
    inp, out = reader._nhwc(ins, outs)
    reader._const_size(ins[1], "size", out.shape[1:3])
    reader._need_quant(inp, "input")
    reader._need_quant(out, "output")
    check_same_grid(name, inp, out, "its int8 kernel interpolates codes")
    o = reader.options(op, cls)
    return {"align_corners": int(bool(o and o.AlignCorners())),
            "half_pixel_centers": int(bool(o and o.HalfPixelCenters()))}


@tflite_op("RESIZE_NEAREST_NEIGHBOR", "resize_nearest", inputs=(2, 2))
def op_resize_nearest_neighbor(reader, op, ins, outs):
    attrs = _resize(reader, op, ins, outs, tflite.ResizeNearestNeighborOptions, "RESIZE_NEAREST_NEIGHBOR")
    return "resize_nearest", attrs, ins[:1]


@tflite_op("RESIZE_BILINEAR", "resize_bilinear", inputs=(2, 2))
def op_resize_bilinear(reader, op, ins, outs):
    attrs = _resize(reader, op, ins, outs, tflite.ResizeBilinearOptions, "RESIZE_BILINEAR")
    if attrs["align_corners"] and attrs["half_pixel_centers"]:  # LiteRT's Prepare refuses it too
        raise DmxError("align_corners and half_pixel_centers are both set; RESIZE_BILINEAR allows one")
    return "resize_bilinear", attrs, ins[:1]
