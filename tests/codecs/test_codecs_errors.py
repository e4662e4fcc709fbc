"""Bad input is refused with a CodecError (a ValueError) that names the problem."""
from __future__ import annotations

import numpy as np
import pytest

from dmxgen.codecs import FORMATS, CodecError, Encoded, decode, encode


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 3, 4), dtype=np.int8), "2-D"),
    (np.zeros(5, dtype=np.int8), "2-D"),
    (np.zeros((2, 3), dtype=np.float32), "int8"),
    (np.zeros((2, 3), dtype=np.uint8), "int8"),
    (np.zeros((2, 3), dtype=np.int16), "int8"),
    ([[1, 2], [3, 4]], "numpy"),
    (np.zeros((0, 3), dtype=np.int8), "empty"),
    (np.zeros((3, 0), dtype=np.int8), "empty"),
])
def test_bad_matrix(fmt: str, bad, words: str) -> None:
    with pytest.raises(CodecError, match=words) as err:
        encode(fmt, bad)
    assert isinstance(err.value, ValueError) and str(err.value).startswith(fmt)


def test_unknown_format() -> None:
    with pytest.raises(CodecError, match="unknown weight format 'coo'"):
        encode("coo", np.zeros((2, 2), dtype=np.int8))


def test_csr_too_many_columns() -> None:
    with pytest.raises(CodecError, match="columns"):
        encode("csr", np.zeros((1, 65537), dtype=np.int8))
    encode("csr", np.zeros((1, 65536), dtype=np.int8))  # the largest that fits


def test_dcsr_row_offsets_overflow() -> None:
    w = np.zeros((2, 70000), dtype=np.int8)
    w[0] = 1
    with pytest.raises(CodecError, match="row_offsets"):
        encode("dcsr", w)


def test_rle_row_count_overflow() -> None:
    with pytest.raises(CodecError, match="int16"):
        encode("rle", np.ones((1, 40000), dtype=np.int8))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_decode_rejects_wrong_arrays(fmt: str) -> None:
    enc = encode(fmt, np.eye(20, dtype=np.int8))
    first = next(iter(enc.arrays))
    wrong_dtype = dict(enc.arrays, **{first: enc.arrays[first].astype(np.int32)})
    with pytest.raises(CodecError, match=first):
        decode(Encoded(fmt, enc.shape, wrong_dtype, enc.nbytes))
    missing = dict(list(enc.arrays.items())[1:])
    with pytest.raises(CodecError, match="expected arrays"):
        decode(Encoded(fmt, enc.shape, missing, enc.nbytes))
    other = "dense" if fmt != "dense" else "csr"
    with pytest.raises(CodecError, match=f"cannot decode a {fmt!r}"):
        FORMATS[other].decode(enc)


def test_dcsr_decode_rejects_inconsistent_lengths() -> None:
    enc = encode("dcsr", np.eye(20, dtype=np.int8))
    arrays = dict(enc.arrays, group_minimums=enc.group_minimums[:-1])
    with pytest.raises(CodecError, match="groups"):
        decode(Encoded("dcsr", enc.shape, arrays, 0))


def test_attribute_errors_are_clear() -> None:
    enc = encode("dense", np.eye(3, dtype=np.int8))
    assert enc.values is enc.arrays["values"]
    with pytest.raises(AttributeError, match="col_idx"):
        enc.col_idx  # noqa: B018
