"""Every codec round-trips random and adversarial int8 matrices, with exact arrays and sizes."""
from __future__ import annotations

import numpy as np
import pytest
from _checks import check_encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dmxgen.codecs import FORMATS, encode

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_CELLS = 1 << 15  # keeps each example fast; C alone still reaches 4096
PATTERNS = ("random", "one_per_row", "far_apart", "empty_rows", "extremes", "all_zero", "dense_prefix",
            "full")


def make(pattern: str, rows: int, cols: int, density: float, seed: int) -> np.ndarray:
    """A matrix of a given shape and structure; hypothesis chooses the knobs."""
    rng = np.random.default_rng(seed)
    w = np.zeros((rows, cols), dtype=np.int8)
    vals = lambda n: rng.choice(np.r_[-128:0, 1:128], size=n).astype(np.int8)  # noqa: E731
    if pattern == "random":
        mask = rng.random((rows, cols)) < density
        w[mask] = vals(int(mask.sum()))
    elif pattern == "one_per_row":
        w[np.arange(rows), rng.integers(0, cols, rows)] = vals(rows)
    elif pattern == "far_apart":  # nonzeros > 255 columns apart: the dCSR padding path
        for r in range(rows):
            start = int(rng.integers(0, 300))
            c = np.arange(start, cols, int(rng.integers(256, 700)))
            w[r, c] = vals(c.size)
    elif pattern == "empty_rows":
        mask = (rng.random((rows, cols)) < max(density, 0.05)) & (rng.random((rows, 1)) < 0.3)
        w[mask] = vals(int(mask.sum()))
    elif pattern == "extremes":
        mask = rng.random((rows, cols)) < max(density, 0.05)
        w[mask] = rng.choice(np.array([-128, 127], dtype=np.int8), size=int(mask.sum()))
    elif pattern == "dense_prefix":  # a dense start then a sparse tail: stresses stored minimums
        run = int(rng.integers(1, min(cols, 48) + 1))
        w[:, :run] = vals(rows * run).reshape(rows, run)
        tail = rng.random((rows, cols - run)) < density / 4
        w[:, run:][tail] = vals(int(tail.sum()))
    elif pattern == "full":
        w[:] = vals(rows * cols).reshape(rows, cols)
    return w


@st.composite
def matrices(draw) -> np.ndarray:
    cols = draw(st.one_of(st.integers(1, 40), st.integers(1, 4096), st.sampled_from([255, 256, 257, 4096])))
    rows = draw(st.integers(1, max(1, min(64, MAX_CELLS // cols))))
    density = draw(st.one_of(st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0]), st.floats(0, 1)))
    pattern = draw(st.sampled_from(PATTERNS))
    return make(pattern, rows, cols, density, draw(st.integers(0, 2**32 - 1)))


small = arrays(np.int8, st.tuples(st.integers(1, 6), st.integers(1, 70)),
               elements=st.sampled_from([0, 0, 0, 0, 1, -1, 127, -128, 42]))


@pytest.mark.parametrize("fmt", list(FORMATS))
@FAST
@given(w=matrices())
def test_roundtrip_structured(fmt: str, w: np.ndarray) -> None:
    check_encoding(encode(fmt, w), w)


@pytest.mark.parametrize("fmt", list(FORMATS))
@settings(max_examples=300, deadline=None)
@given(w=small)
def test_roundtrip_small(fmt: str, w: np.ndarray) -> None:
    check_encoding(encode(fmt, w), w)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("shape", [(1, 1), (1, 4096), (3, 4096), (64, 1), (5, 300), (1, 17), (2, 18)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_roundtrip_edges(fmt: str, shape: tuple[int, int], pattern: str) -> None:
    w = make(pattern, *shape, density=0.2, seed=sum(shape))
    check_encoding(encode(fmt, w), w)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_noncontiguous_input(fmt: str) -> None:
    w = make("random", 40, 30, 0.3, 1)[::2, ::-1]
    check_encoding(encode(fmt, w), w)


def test_csr_row_ptr_widens_past_65535() -> None:
    w = np.ones((3, 30000), dtype=np.int8)
    enc = encode("csr", w)
    assert enc.row_ptr.dtype == np.uint32
    check_encoding(enc, w)
    assert encode("csr", w[:, :21845]).row_ptr.dtype == np.uint16  # 65535 nonzeros


@pytest.mark.parametrize("first", [127, 128, 200])
def test_dcsr_group_minimum_checked_before_narrowing(first: int) -> None:
    """A row whose only fault is m_0 = `first` (> 126; 128 and 200 wrap in int8) must be padded."""
    from dmxgen.codecs import dcsr

    # n entries 17 apart starting at `first`: s = 17 when n > 2*(first - 16), so every
    # a_j = first and later groups store 0.
    n = 16 * -(-(2 * (first - 16) + 1) // 16)
    cols = first + 17 * np.arange(n)
    c = int(cols[-1]) + 1
    assert dcsr.slope(n, c) == 17
    w = np.zeros((1, c), dtype=np.int8)
    w[0, cols] = 5
    lay = dcsr._layout(np.zeros(n, dtype=np.int64), cols.astype(np.int64), 1, c)
    assert lay.stored[0] == first and np.all(lay.stored[1:] == 0) and lay.bad_rows.tolist() == [0]
    enc = encode("dcsr", w)
    assert enc.meta["inserted_zeros"] > 0
    check_encoding(enc, w)


def test_dcsr_very_sparse_wide_rows_pad_until_slope_fits() -> None:
    """One nonzero per 4096-wide row: the retry loop must add zeros until 15*s <= 255."""
    w = make("one_per_row", 8, 4096, 0, seed=3)
    enc = encode("dcsr", w)
    counts = enc.nnze[0] // 8 + enc.row_offsets.astype(int)
    assert np.all(15 * ((4096 + counts // 2) // counts) <= 255)
    check_encoding(enc, w)


def test_dcsr_single_nonzero_at_column_zero_duplicates_column() -> None:
    """n = 1 inserts floor(i_0/2) = 0 in front: column 0 appears twice and the real value wins."""
    w = np.zeros((1, 64), dtype=np.int8)
    w[0, 0] = -128
    enc = encode("dcsr", w)
    assert enc.values[0] == 0 and enc.values[1] == -128
    check_encoding(enc, w)
