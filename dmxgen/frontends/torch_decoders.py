"""The torch frontend's resize layers (compress/decoders.py QuantResize) as resize_nearest /
resize_bilinear ops: NHWC in and out, on the input's grid, TFLite's align_corners and
half_pixel_centers flags (torch's bilinear align_corners=False is TFLite's half_pixel_centers)."""
from __future__ import annotations


def export_resize(ex, node, name: str, m, x):
    """One resize op; `ex` is the torch_graph exporter, x the input's Val."""
    x = ex.channels_first(name, x, "nchw")
    if x.layout != "nchw" or x.perm is not None:
        ex.fail(name, f"resizing a {len(x.tshape)}-D {x.layout} tensor is not supported; it needs an NCHW input")
    out = ex.new_tensor(name, ex.tshape(node), "nchw", x.quant)
    spec = m.spec
    ex.add_op(name, spec["kind"], [x.name], out.name,
              {"align_corners": spec["align_corners"], "half_pixel_centers": spec["half_pixel_centers"]})
    return out
