"""RESIZE_NEAREST_NEIGHBOR: up- and downscaling by whole and odd factors, align_corners and
half_pixel_centers in every combination, the index tables, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.errors import DmxError
from dmxgen.frontends.tflite import load_tflite
from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case, save
from ._targets import check_targets, targets, targets16

VALID_ATTRS = [{"align_corners": 0, "half_pixel_centers": 1}, {"align_corners": 1, "half_pixel_centers": 0}]
FLAGS = {"plain": (False, False), "align": (True, False), "half": (False, True), "both": (True, True)}


def resize_model(opname, shape, size, align=False, half=False, out_quant=None, size_data=None):
    m = ModelBuilder()
    q = {"scale": 0.05, "zero_point": -7}
    x = m.tensor("x", shape, "int8", **q)
    s = m.tensor("size", [2], "int32", data=list(size if size_data is None else size_data))
    y = m.tensor("y", [shape[0], size[0], size[1], shape[3]], "int8", **(out_quant or q))
    m.op(opname, [x, s], [y], alignCorners=align, halfPixelCenters=half)
    return m, x, y


SIZES = {"up2": ((1, 3, 4, 2), (6, 8)), "up_odd": ((1, 3, 5, 3), (7, 11)), "down": ((1, 9, 8, 2), (4, 3)),
         "down_odd": ((1, 7, 10, 1), (3, 7)), "to_one": ((1, 5, 4, 2), (1, 1)), "from_one": ((1, 1, 1, 3), (3, 2)),
         "batch2_up3": ((2, 2, 3, 2), (6, 9))}
CASES = {f"{size}_{flag}": (SIZES[size], FLAGS[flag]) for size in SIZES for flag in FLAGS}


def case(name: str) -> Case:
    (shape, size), (align, half) = CASES[name]
    m, x, y = resize_model("RESIZE_NEAREST_NEIGHBOR", shape, size, align, half)
    return Case(m, [x], [y], n=2, seed=3)


@pytest.mark.parametrize("name", list(CASES))
def test_resize_nearest_matches_tflite(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflite",))


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith(("up_odd", "down_odd", "batch2"))])
def test_resize_nearest_matches_tflm(tmp_path, name):
    check_case(case(name), tmp_path, goldens=("tflm",))


@pytest.mark.parametrize("target", targets("resize_nearest"))
def test_resize_nearest_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {name: case(name) for name in CASES})


def test_nearest_tables_pick_the_rows_tflite_picks():
    from dmxgen.ops.resize_nearest import nearest_indices

    # 3 -> 7 rows: floor(y * 3/7); with half pixel centers floor((y + 0.5) * 3/7); aligned round(y * 2/6)
    assert nearest_indices(3, 7, 0, 0).tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert nearest_indices(3, 7, 0, 1).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert nearest_indices(3, 7, 1, 0).tolist() == [0, 0, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("kw, message", [
    ({"out_quant": {"scale": 0.1, "zero_point": -7}},
     r"\(RESIZE_NEAREST_NEIGHBOR, output 'y'\): RESIZE_NEAREST_NEIGHBOR changes the quantization"),
    ({"size_data": (6, 9)}, r"\(RESIZE_NEAREST_NEIGHBOR, output 'y'\): size \[6, 9\] differs from the output "
                            r"tensor's \[6, 8\]$"),
])
def test_resize_nearest_refusals_name_the_layer(tmp_path, kw, message):
    m, x, y = resize_model("RESIZE_NEAREST_NEIGHBOR", (1, 3, 4, 2), (6, 8), **kw)
    with pytest.raises(DmxError, match=message) as e:
        load_tflite(save(m, tmp_path, [x], [y]))
    assert "\n" not in str(e.value)


# -- int16 codes (TFLite's 16x8 scheme: the same model with int16 activations, zero point 0) -------------
INT16 = ["up2_plain", "up_odd_half", "up_odd_align", "down_odd_both", "to_one_plain", "from_one_half",
         "batch2_up3_align"]


def case16(name: str) -> Case:
    c = case(name)
    c.m.to_int16()
    return Case(c.m, c.inputs, c.outputs, n=2, seed=4)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("name", INT16)
def test_resize_nearest_int16(tmp_path, name, golden):
    out = check_case(case16(name), tmp_path, goldens=(golden,))
    assert out.dtype == np.int16 and (np.abs(out.astype(np.int32)) > 127).any()  # not int8 codes widened


def test_resize_bilinear_int16_is_refused(tmp_path):
    m, x, y = resize_model("RESIZE_BILINEAR", (1, 3, 4, 2), (6, 8))
    m.to_int16()
    with pytest.raises(DmxError, match=r"\(RESIZE_BILINEAR, output 'y'\): tensor 'x' is int16; only int8 is "
                                       r"supported for this operator$"):
        load_tflite(save(m, tmp_path, [x], [y]))


@pytest.mark.parametrize("target", targets16("resize_nearest"))
def test_resize_nearest_int16_on_targets(tmp_path, target):
    """With two int8 cases in the same build: the int8 and int16 kernels side by side."""
    cases = {"int8_up2_plain": case("up2_plain"), "int8_down_odd": case("down_odd_half")}
    check_targets(tmp_path, target, cases | {name: case16(name) for name in INT16})
