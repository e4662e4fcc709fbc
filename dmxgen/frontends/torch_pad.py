"""A Conv1d / Conv2d with padding_mode "reflect" or "replicate" -> a mirror_pad op, then the conv
with no padding (the conv's own pad amounts, PyTorch's rule for "same" included, move to the pad).

The padded values are the input's own codes, so the pair is exact: the fake-quantized conv pads
its fake-quantized input the same way (torch's _conv_forward).
"""
from __future__ import annotations

MODES = {"reflect": "reflect", "replicate": "edge"}  # torch padding_mode -> mirror_pad mirror


def export_mirror_pad(ex, name: str, x, layer, pad: tuple[int, int, int, int]):
    """The Val of x padded by the conv's (top, left, bottom, right) graph pads in its padding_mode."""
    top, left, bottom, right = pad
    if x.layout == "nchw":
        n, c, h, w = x.tshape
        tshape = (n, c, h + top + bottom, w + left + right)
    else:  # ncl: the graph's [N, 1, L, C]
        n, c, length = x.tshape
        tshape = (n, c, length + left + right)
    out = ex.new_tensor(f"{name}.pad", tshape, x.layout, x.quant)
    ex.add_op(f"{name}.pad", "mirror_pad", [x.name], out.name,
              {"paddings": ((0, 0), (top, bottom), (left, right), (0, 0)), "mirror": MODES[layer.padding_mode]})
    return out
