"""TFLite's slicing operators resolved to plain per-dim ranges (the strided_slice op's attrs).

STRIDED_SLICE follows LiteRT's kernel (strided_slice.cc BuildStridedSliceParams, then
strided_slice_logic.h StridedSliceStartForAxis / StridedSliceEndForAxis): the ellipsis and
new axes are expanded into an "effective" shape first, then each effective dim's start and
end are clamped, masked, offset and shrunk exactly as there. SLICE and SPLIT / SPLIT_V are
ranges of step 1. A value the kernel would read out of bounds is refused, naming the option.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DmxError

MAX_DIMS = 5  # LiteRT's reference kernel pads every slice to 5 dims


@dataclass(frozen=True)
class Ranges:
    """One range(begin, end, step) per input dim, and the output shape the operator writes."""

    begin: tuple[int, ...]
    end: tuple[int, ...]
    step: tuple[int, ...]
    out_shape: tuple[int, ...]


def _clamp(v: int, lo: int, hi: int) -> int:
    return hi if v > hi else lo if v < lo else v


def _bits(mask: int, n: int) -> list[bool]:
    return [bool(mask >> i & 1) for i in range(n)]


def strided_slice(shape, begin, end, strides, *, begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0,
                  shrink_axis_mask=0, offset=False) -> Ranges:
    """STRIDED_SLICE of an input of `shape` with constant begin/end/strides and its options."""
    rank, count = len(shape), len(begin)
    if not len(end) == len(strides) == count:
        raise DmxError(f"begin, end and strides have {count}, {len(end)} and {len(strides)} values")
    if bin(ellipsis_mask).count("1") > 1:
        raise DmxError(f"ellipsis_mask {ellipsis_mask} sets more than one bit (TFLite allows one ellipsis)")
    num_add_axis = sum(1 for i in range(count) if new_axis_mask >> i & 1 and not ellipsis_mask >> i & 1)
    eff_dims = rank + num_add_axis
    if eff_dims > MAX_DIMS:
        raise DmxError(f"new_axis_mask: {eff_dims} dims after the new axes; TFLite slices at most {MAX_DIMS}")
    # the ellipsis expands to the dims begin/end do not name; new axes become dims of size 1
    eff_ellipsis, eff_new, ellipsis_start, expanded = set(), set(), eff_dims, 0
    i = 0
    while i < eff_dims:
        if ellipsis_mask >> i & 1:
            ellipsis_start = i
            stop = max(i + 1, min(i + 1 + num_add_axis + rank - count, eff_dims))
            expanded = stop - ellipsis_start - 1
            eff_ellipsis.update(range(i, stop))
            i = stop
            continue
        if i - expanded >= 0 and new_axis_mask >> (i - expanded) & 1:
            eff_new.add(i)
        i += 1
    starts, stops, steps, bmask, emask, shrink, eff_shape, source = [], [], [], set(), set(), set(), [], []
    added_ellipsis = added_axes = 0
    for i in range(eff_dims):
        if i in eff_ellipsis:
            added_ellipsis = max(0, i - ellipsis_start)
            starts.append(0), stops.append(0), steps.append(1)
            bmask.add(i), emask.add(i)
        elif i in eff_new:
            starts.append(0), stops.append(1), steps.append(1)
            eff_shape.append(1), source.append(None)
            added_axes += 1
            continue
        elif i >= count + expanded:
            starts.append(0), stops.append(0), steps.append(1)
            bmask.add(i), emask.add(i)
        else:
            k = i - added_ellipsis
            starts.append(int(begin[k])), stops.append(int(end[k])), steps.append(int(strides[k]))
            if begin_mask >> k & 1:
                bmask.add(i)
            if end_mask >> k & 1:
                emask.add(i)
            if shrink_axis_mask >> k & 1:
                shrink.add(i)
        if i - added_axes >= rank:
            raise DmxError(f"begin, end and strides name {count} dims; the input has {rank}")
        eff_shape.append(int(shape[i - added_axes])), source.append(i - added_axes)
    out_shape, rb, re_, rs = [], [0] * rank, [0] * rank, [1] * rank
    for i in range(eff_dims):
        size, step = eff_shape[i], steps[i]
        if step == 0:
            raise DmxError(f"stride of dim {i} is 0")
        start = starts[i] + size if starts[i] < 0 else starts[i]
        start = _clamp(start, 0, size) if step > 0 else _clamp(start, -1, size - 1)
        if i in bmask:
            start = 0 if step > 0 else size - 1
        if i in shrink:
            if not 0 <= start < size:
                raise DmxError(f"shrink_axis_mask: begin {starts[i]} is outside dim {i} of size {size}")
            stop = start + 1 if step > 0 else start - 1
        else:
            stop = stops[i] + start if offset else stops[i]
            if i in emask:
                stop = size if step > 0 else -1
            else:
                stop = stop + size if stop < 0 else stop
                stop = _clamp(stop, 0, size) if step > 0 else _clamp(stop, -1, size - 1)
        n = len(range(start, stop, step))
        if i not in shrink:
            out_shape.append(n)
        if source[i] is not None:
            rb[source[i]], re_[source[i]], rs[source[i]] = (start, stop, step) if n else (0, 0, 1)
    return Ranges(tuple(rb), tuple(re_), tuple(rs), tuple(out_shape))


def slice_(shape, begin, size) -> Ranges:
    """SLICE: `size` values from `begin` per dim (-1: to the end), as LiteRT's slice.cc checks them."""
    if not len(begin) == len(size) == len(shape):
        raise DmxError(f"begin and size have {len(begin)} and {len(size)} values for a {len(shape)}-D input")
    b, e = [], []
    for d, (n, start, count) in enumerate(zip(shape, begin, size)):
        start, count = int(start), int(count)
        stop = n if count == -1 else start + count
        if not 0 <= start <= n or count < -1 or not start <= stop <= n:
            raise DmxError(f"begin {start} and size {count} of dim {d} leave its {n} elements")
        b.append(start), e.append(stop)
    return Ranges(tuple(b), tuple(e), (1,) * len(shape), tuple(y - x for x, y in zip(b, e)))


def split(shape, axis: int, sizes) -> list[Ranges]:
    """SPLIT / SPLIT_V: consecutive pieces of `sizes` along `axis` (already resolved)."""
    out, at = [], 0
    for n in sizes:
        b, e = [0] * len(shape), [int(d) for d in shape]
        b[axis], e[axis] = at, at + int(n)
        at += int(n)
        out.append(Ranges(tuple(b), tuple(e), (1,) * len(shape), tuple(y - x for x, y in zip(b, e))))
    return out


def const_ints(t, what: str) -> list[int]:
    """The values of a constant int32 / int64 tensor (begin, end, strides, sizes, axis)."""
    if t.data is None or t.dtype not in ("int32", "int64"):
        raise DmxError(f"{what} {t.name!r} must be a constant int32 or int64 tensor")
    return [int(v) for v in t.data.reshape(-1)]
