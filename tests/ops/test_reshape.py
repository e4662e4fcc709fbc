"""RESHAPE: the same bytes under a new shape, with a shape tensor or only the new_shape option."""
from __future__ import annotations

import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import Case, check_case
from ._targets import check_targets, targets

CASES = {
    "flatten": ((1, 3, 4, 2), (1, 24)),
    "unflatten": ((1, 24), (1, 2, 3, 4)),
    "to_rank1": ((2, 3, 4), (24,)),
    "swap_like": ((3, 8), (8, 3)),  # not a transpose: the row-major order stays
}


def case(name: str, shape_input: bool, dtype: str) -> Case:
    src, dst = CASES[name]
    q = {"scale": 0.05, "zero_point": -7} if dtype == "int8" else {}
    m = ModelBuilder()
    x = m.tensor("x", src, dtype, **q)
    y = m.tensor("y", dst, dtype, **q)
    if shape_input:
        m.op("RESHAPE", [x, m.tensor("shape", [len(dst)], "int32", data=list(dst))], [y], newShape=list(dst))
    else:
        m.op("RESHAPE", [x], [y], newShape=list(dst))
    return Case(m, [x], [y], n=2, seed=17)


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("shape_input", [True, False])
@pytest.mark.parametrize("name", list(CASES))
def test_reshape(tmp_path, name, shape_input, dtype, golden):
    out = check_case(case(name, shape_input, dtype), tmp_path, goldens=(golden,))
    assert out.shape[1:] == CASES[name][1]


# Not HLS: there reshape is an alias (no layer), and a graph whose output is its input under
# another shape has no layer for the top function, which hls_plan.py refuses; HLS runs reshape
# between layers in tests/backends/test_hls_ops.py ("branchy").
@pytest.mark.parametrize("target", [t for t in targets("reshape") if t.id != "hls"])
def test_reshape_on_targets(tmp_path, target):
    check_targets(tmp_path, target, {f"{name}_{'shape' if s else 'option'}_{dtype}": case(name, s, dtype)
                                     for name in CASES for s in (True, False) for dtype in ("int8", "float32")})
