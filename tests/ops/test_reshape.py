"""RESHAPE: the same bytes under a new shape, with a shape tensor or only the new_shape option."""
from __future__ import annotations

import pytest

from dmxgen.testing.tflite_builder import ModelBuilder

from ._harness import check

CASES = {
    "flatten": ((1, 3, 4, 2), (1, 24)),
    "unflatten": ((1, 24), (1, 2, 3, 4)),
    "to_rank1": ((2, 3, 4), (24,)),
    "swap_like": ((3, 8), (8, 3)),  # not a transpose: the row-major order stays
}


@pytest.mark.parametrize("golden", ["tflite", "tflm"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("shape_input", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_reshape(tmp_path, case, shape_input, dtype, golden):
    src, dst = CASES[case]
    q = {"scale": 0.05, "zero_point": -7} if dtype == "int8" else {}
    m = ModelBuilder()
    x = m.tensor("x", src, dtype, **q)
    y = m.tensor("y", dst, dtype, **q)
    if shape_input:
        m.op("RESHAPE", [x, m.tensor("shape", [len(dst)], "int32", data=list(dst))], [y], newShape=list(dst))
    else:
        m.op("RESHAPE", [x], [y], newShape=list(dst))
    out = check(m, tmp_path, [x], [y], goldens=(golden,), n=2, seed=17)
    assert out.shape[1:] == dst
