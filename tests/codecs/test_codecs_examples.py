"""Small matrices whose arrays were worked out by hand from docs/formats.md."""
from __future__ import annotations

import numpy as np
import pytest
from _checks import check_encoding

from dmxgen.codecs import encode

ROW0_COLS = [*range(8), *range(40, 48), 63]
ROW0_VALS = [-128, 127, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, -1]


@pytest.fixture
def w() -> np.ndarray:
    """4 x 64: a 17-entry row (two groups, extension bits), an empty row, two rows that need padding."""
    m = np.zeros((4, 64), dtype=np.int8)
    m[0, ROW0_COLS] = ROW0_VALS
    m[2, [10, 50]] = [100, -100]
    m[3, 5] = -7
    return m


def test_dcsr_by_hand(w: np.ndarray) -> None:
    # Row 0: n = 17, s = (64 + 8) // 17 = 4. Group 0: a_j = i_j - 4j =
    #   0 -3 -6 -9 -12 -15 -18 -21 | 8 5 2 -1 -4 -7 -10 -13, m_0 = -21, d = a + 21 =
    #   21 18 15 12 9 6 3 0 | 29 26 23 20 17 14 11 8; every d + 4j = i_j + 21 <= 68.
    #   Group 1: lane 0 at 63, m_1 = 63, stored 63 - (-21) - 16*4 = 20, d = 0.
    # Row 1: empty, no groups.
    # Row 2: cols 10, 50. n = 2: s = 32, 15*32 > 255, reject; gaps 10 40 14 -> insert
    #   50 - 20 = 30 before entry 1. n = 3: s = 21, reject; gaps 10 20 20 14 -> first
    #   largest k = 1: insert 30 - 10 = 20. n = 4: s = 16, a = 10 4 -2 2, m = -2,
    #   d = 12 6 0 4, d + 16j = 12 22 32 52: accepted. Values 100 0 0 -100.
    # Row 3: col 5. n = 1: s = 64, reject; n = 1 rule inserts 5 // 2 = 2 in front.
    #   n = 2: reject; gaps 2 3 59 -> k = n: append 64 - 30 = 34. n = 3: reject;
    #   gaps 2 3 29 30 -> append 64 - 15 = 49. n = 4: s = 16, a = 2 -11 2 1,
    #   m = -11, d = 13 0 13 12: accepted. Values 0 -7 0 0.
    # V = 17 + 4 + 4 = 25, G = 4 (groups 0,1 row 0; 2 row 2; 3 row 3), floor(V/R) = 6.
    enc = encode("dcsr", w)
    a = enc.arrays
    assert a["values"].tolist() == ROW0_VALS + [100, 0, 0, -100] + [0, -7, 0, 0]
    g0 = [0x5, 0x2, 0xF, 0xC, 0x9, 0x6, 0x3, 0x0, 0xD, 0xA, 0x7, 0x4, 0x1, 0xE, 0xB, 0x8]
    pair0 = [x << 4 for x in g0]  # group 1 (low nibbles) is all 0
    pair1 = [(12 << 4) | 13, 6 << 4, 13, (4 << 4) | 12] + [0] * 12  # groups 2 (high) and 3 (low)
    assert a["delta_indices"].tolist() == pair0 + pair1
    # Lanes with d >= 16 in group 0: 0 1 8 9 10 11 12 (bit 4 only; no d >= 32).
    assert a["bitmaps"].tolist() == [0x10, 0x00]
    assert a["bitmasks"].tolist() == [0x1F03]
    assert a["group_minimums"].tolist() == [-21, 20, -2, -11]
    assert a["row_offsets"].tolist() == [17 - 6, 0 - 6, 4 - 6, 4 - 6]
    assert a["nnze"].tolist() == [25]
    assert enc.nbytes == 25 + 17 * 2 + 4 + 2 * 1 + 2 * 4 + 4 == 77
    assert enc.meta["inserted_zeros"] == 5 and enc.meta["groups"] == 4
    check_encoding(enc, w)


def test_csr_by_hand(w: np.ndarray) -> None:
    enc = encode("csr", w)
    assert enc.values.tolist() == ROW0_VALS + [100, -100, -7]
    assert enc.col_idx.tolist() == ROW0_COLS + [10, 50, 5]
    assert enc.row_ptr.tolist() == [0, 17, 17, 19, 20] and enc.row_ptr.dtype == np.uint16
    assert enc.nbytes == 3 * 20 + 5 * 2 and enc.nbytes_paper == 3 * 20 + 2 * 4
    check_encoding(enc, w)


def test_rle_by_hand(w: np.ndarray) -> None:
    # Row 0: col 0 d=0; cols 1-7 d=1; col 40 d=33 -> 2 pads + 3; cols 41-47 d=1; col 63 d=16 -> pad + 1.
    # Row 2: col 10 d=10; col 50 d=40 -> 2 pads + 10. Row 3: col 5 d=5. E = 20 + 4 + 1 = 25.
    enc = encode("rle", w)
    assert enc.values.tolist() == (ROW0_VALS[:8] + [0, 0] + ROW0_VALS[8:16] + [0, -1]
                                   + [100, 0, 0, -100] + [-7])
    assert enc.deltas.tolist() == [0x01, 0x11, 0x11, 0x11, 0xFF, 0x31, 0x11, 0x11, 0x11, 0xF1,
                                   0xAF, 0xFA, 0x50]
    assert enc.row_counts.tolist() == [20, 0, 4, 1]
    assert enc.nbytes == 25 + 13 + 2 * 4
    check_encoding(enc, w)


def test_dense_by_hand(w: np.ndarray) -> None:
    enc = encode("dense", w)
    assert enc.values.tolist() == w.reshape(-1).tolist() and enc.nbytes == 256
    check_encoding(enc, w)


def test_dcsr_decoder_follows_the_pointer_chain() -> None:
    """Arrays written by hand, not by the encoder: one row, two groups, one extension mask."""
    from dmxgen.codecs import Encoded, decode

    # 1 x 40, n = 17: s = (40 + 8) // 17 = 2. Group 0 min 0; lane j at 2j + nibble, lane 3 has
    # nibble 1 and bit 4 set (+16): column 6 + 1 + 16 = 23. Group 1: P = 0 + 16*2 + 5 = 37.
    nib0 = [0, 0, 0, 1] + [0] * 12
    enc = Encoded("dcsr", (1, 40), {
        "values": np.arange(1, 18, dtype=np.int8),
        "delta_indices": np.array([x << 4 for x in nib0], dtype=np.uint8),
        "bitmaps": np.array([0x10], dtype=np.uint8),
        "bitmasks": np.array([1 << 3], dtype=np.uint16),
        "group_minimums": np.array([0, 5], dtype=np.int8),
        "row_offsets": np.array([0], dtype=np.int16),
        "nnze": np.array([17], dtype=np.uint32),
    }, 0)
    out = decode(enc)
    expect = np.zeros((1, 40), dtype=np.int8)
    cols = [2 * j for j in range(16)]
    cols[3] = 23
    expect[0, cols] = np.arange(1, 17)
    expect[0, 37] = 17
    np.testing.assert_array_equal(out, expect)
