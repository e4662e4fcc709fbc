"""Numeric format strings of the config: INT8, INT4(PER_TENSOR), XP[8,0](CSN), SAME.

The targets are integer-only, so every format is a signed integer grid: weights
symmetric (zero point 0), activations asymmetric per tensor (TFLite's scheme),
biases int32 on the grid input_scale * weight_scale. Parsing is separate from
use so that a malformed string is reported with its key and layer before any
model is touched.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DmxError

GRANULARITIES = ("PER_TENSOR", "PER_CHANNEL")
_INT = re.compile(r"^INT(\d+)(?:\((PER_TENSOR|PER_CHANNEL)\))?$")
_XP = re.compile(r"^XP\[(\d+),(-?\d+)\]\(([A-Z]*)\)$")
_BITS = {"weight": (4, 8), "input": (4, 8), "output": (4, 8), "bias": (32,)}


@dataclass(frozen=True)
class NumFormat:
    """A signed integer format; `granularity` None means the slot's default."""

    bits: int
    granularity: str | None = None

    @property
    def qmax(self) -> int:
        """Largest code; weights use [-qmax, qmax] so that they stay symmetric."""
        return (1 << (self.bits - 1)) - 1

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    def spelled(self) -> str:
        return f"INT{self.bits}" + (f"({self.granularity})" if self.granularity else "")


SAME = None  # "no constraint": the slot keeps its default or inherits its neighbour's format


def normalize(text, example: str) -> str:
    """A config value as upper case without spaces; raises ValueError for a non-string."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as {example}, got {text!r}")
    return text.strip().upper().replace(" ", "")


def parse_format(text, slot: str) -> NumFormat | None:
    """Parse one format string for `slot` (weight, input, output, bias); None for SAME.

    Raises ValueError with a message that does not name the layer (the caller adds it).
    """
    s = normalize(text, "INT8")
    if s == "SAME":
        return SAME
    m = _INT.match(s)
    if m:
        fmt = NumFormat(int(m.group(1)), m.group(2))
    else:
        m = _XP.match(s)
        if not m:
            raise ValueError(f"malformed format {text!r}; expected INT8, INT4, INT8(PER_CHANNEL), "
                             "INT8(PER_TENSOR), XP[8,0](CSN) or SAME")
        bits, frac, flags = int(m.group(1)), int(m.group(2)), m.group(3)
        if frac != 0:
            raise ValueError(f"{text!r}: only XP[b,0] is supported (scales come from calibration, "
                             "not from a fixed number of fraction bits)")
        if flags != "CSN":
            raise ValueError(f"{text!r}: only the (CSN) flags are supported (clamped, signed, round to nearest)")
        fmt = NumFormat(bits, "PER_TENSOR")
    if fmt.bits not in _BITS[slot]:
        allowed = " or ".join(f"INT{b}" for b in _BITS[slot])
        why = " (biases are int32 on the grid input_scale*weight_scale)" if slot == "bias" else ""
        raise ValueError(f"{text!r}: {slot} formats must be {allowed}{why}")
    if slot in ("input", "output") and fmt.granularity == "PER_CHANNEL":
        raise ValueError(f"{text!r}: activations are quantized per tensor; PER_CHANNEL applies to weights only")
    if slot == "bias" and fmt.granularity is not None:
        fmt = NumFormat(32)
    return fmt


def weight_format(fmt: NumFormat | None) -> NumFormat:
    """The default for weights: INT8 per output channel."""
    if fmt is None:
        return NumFormat(8, "PER_CHANNEL")
    return fmt if fmt.granularity else NumFormat(fmt.bits, "PER_CHANNEL")


def activation_format(fmt: NumFormat | None) -> NumFormat:
    """The default for activations: INT8 per tensor."""
    return NumFormat(8, "PER_TENSOR") if fmt is None else NumFormat(fmt.bits, "PER_TENSOR")


def check_format(text, slot: str, where: str) -> NumFormat | None:
    """parse_format with the error turned into a DmxError naming `where`."""
    try:
        return parse_format(text, slot)
    except ValueError as e:
        raise DmxError(f"{where}: {e}") from None
