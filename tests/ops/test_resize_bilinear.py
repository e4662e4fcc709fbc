"""RESIZE_BILINEAR (int8, TFLite's ResizeBilinearInteger): up- and downscaling, odd factors,
align_corners and half_pixel_centers, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite

from ._harness import Case, check_case, save
from ._targets import check_targets, targets
from .test_resize_nearest import SIZES, resize_model

VALID_ATTRS = [{"align_corners": 0, "half_pixel_centers": 1}, {"align_corners": 1, "half_pixel_centers": 0}]
FLAGS = {"plain": (False, False), "align": (True, False), "half": (False, True)}
CASES = {f"{size}_{flag}": (SIZES[size], FLAGS[flag]) for size in SIZES for flag in FLAGS}
CASES["up8_half"] = (((1, 2, 3, 2), (16, 24)), FLAGS["half"])  # fractions below zero at the edges
CASES["up5_align"] = (((1, 3, 2, 1), (11, 6)), FLAGS["align"])


def case(name: str) -> Case:
    (shape, size), (align, half) = CASES[name]
    m, x, y = resize_model("RESIZE_BILINEAR", shape, size, align, half)
    return Case(m, [x], [y], n=2, seed=5)


@pytest.mark.parametrize("name", list(CASES))
def test_resize_bilinear_matches_tflite(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflite",))


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("up_odd", "down_odd", "up8", "batch2"))])
def test_resize_bilinear_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("resize_bilinear"))
def test_resize_bilinear_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_interpolation_rounds_half_away_from_zero():
    from dmxgen.ops.resize_bilinear import interpolate

    # one row of two pixels, output half way: (a + b) / 2 with ties away from zero
    tables = np.array([[0, 0, 0]]), np.array([[0, 1, 512]])
    for a, b, want in [(1, 2, 2), (-1, -2, -2), (-1, 0, -1), (1, 0, 1), (-128, 127, -1), (127, 127, 127)]:
        x = np.array([a, b]).reshape(1, 1, 2, 1)
        assert interpolate(x, *tables, np.where).item() == want, (a, b)


@pytest.mark.parametrize("kw, message", [
    ({"align": True, "half": True}, r"\(RESIZE_BILINEAR, output 'y'\): align_corners and half_pixel_centers "
                                    r"are both set; RESIZE_BILINEAR allows one$"),
    ({"out_quant": {"scale": 0.05, "zero_point": 0}}, r"RESIZE_BILINEAR changes the quantization"),
])
def test_resize_bilinear_refusals_name_the_layer(tmp_path, kw, message):
    m, x, y = resize_model("RESIZE_BILINEAR", (1, 3, 4, 2), (6, 8), **kw)
    with pytest.raises(DmxError, match=message) as e:
        load_tflite(save(m, tmp_path, [x], [y]))
    assert "\n" not in str(e.value)


# -- the PyTorch frontend: F.interpolate / nn.Upsample between two convs ----------------------------
class Resizer(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.a, self.b, self.kw = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 2, 1), kw

    def forward(self, x):
        return self.b(F.interpolate(torch.relu(self.a(x)), **self.kw))


TORCH_CASES = {"bilinear_size_odd": {"size": (7, 11), "mode": "bilinear"},
               "bilinear_down_align": {"size": (3, 4), "mode": "bilinear", "align_corners": True},
               "bilinear_x3": {"scale_factor": 3, "mode": "bilinear"},
               "nearest_down": {"size": (3, 5), "mode": "nearest"},
               "nearest_exact_up": {"size": (9, 7), "mode": "nearest-exact"}}


@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_resize_from_torch_is_bit_exact_with_the_fake_quantized_model(name):
    import dmxgen
    from dmxgen.api import reference_outputs

    torch.manual_seed(1)
    x = torch.randn(16, 3, 5, 6)
    m = dmxgen.Model(Resizer(**TORCH_CASES[name]).eval()).transform(None)
    with m.calibrating():
        m(x)
    m.eval()
    g = m.to_graph(x[:1])
    assert [op.kind for op in g.ops if op.kind.startswith("resize")] == \
        ["resize_nearest" if "nearest" in name else "resize_bilinear"]
    ref = reference_outputs(g, m.quantize_input(x)).astype(np.int64)
    fq = m.output_codes(x).reshape(ref.shape)
    assert np.array_equal(ref, fq), f"{int((ref != fq).sum())} of {ref.size} codes differ"


@pytest.mark.parametrize("kw, message", [
    ({"scale_factor": 2, "mode": "bicubic"}, r"^layer 'interpolate': resize mode 'bicubic' is not supported "
                                            r"\(nearest, nearest-exact, bilinear\)$"),
    ({"scale_factor": 2, "mode": "bilinear", "antialias": True},
     r"^layer 'interpolate': interpolate with antialias=True is not supported$"),
])
def test_torch_resize_refusals(kw, message):
    import dmxgen

    with pytest.raises(DmxError, match=message):
        dmxgen.Model(Resizer(**kw)).transform(None)
