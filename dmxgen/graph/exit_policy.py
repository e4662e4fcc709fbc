"""The early-exit confidence test: one integer rule on an exit head's int8 logits.

The integer reference, the PyTorch EarlyExit (compress/early_exit.py) and the
C kernel (templates/c/kernels/exit_policy.c.j2) all decide with the rule
written here, so that every build takes the same exit. A head *accepts* (the
model returns its logits) when its confidence >= its threshold:

- "margin": the largest logit code minus the second largest, in int32. Equal
  top two give 0; a head with one logit has no runner-up and gives MAX_MARGIN.
- "softmax": the int8 code of the largest probability, as TFLite Micro's
  integer softmax (softmax_gemmlowp, beta 1, output grid 1/256, -128) computes
  it on the logits with the head's output scale; the code of probability p is
  256 p - 128, so `probability_threshold(0.9)` is the threshold for p >= 0.9.

The class an exit predicts is the first index of its largest logit (argmax's
tie rule). Thresholds are int32; NEVER[kind] is a threshold no head reaches,
ALWAYS[kind] one every head reaches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DmxError
from . import fixedpoint as fp
from .quant_params import softmax_gemmlowp_params

KINDS = ("margin", "softmax")
MAX_MARGIN = 255  # the widest int8 margin (127 - -128): what a one-logit head is given
ALWAYS = {"margin": 0, "softmax": -128}
NEVER = {"margin": MAX_MARGIN + 1, "softmax": 128}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise DmxError(f"early-exit policy {kind!r} is not one of {', '.join(KINDS)}")
    return kind


@dataclass(frozen=True)
class ExitPolicy:
    """A confidence rule and one int32 threshold per exit head, in exit order (shallowest first)."""

    kind: str = "margin"
    thresholds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_kind(self.kind)
        values = tuple(int(t) for t in self.thresholds)
        if any(t < fp.INT32_MIN or t > fp.INT32_MAX for t in values):
            raise DmxError(f"early-exit thresholds {list(values)} must be int32")
        object.__setattr__(self, "thresholds", values)


def _rows(logits) -> np.ndarray:
    """int8 logit codes as an int64 [rows, classes] array; refuses anything else."""
    a = np.asarray(logits)
    if a.ndim not in (1, 2) or a.shape[-1] < 1:
        raise DmxError(f"exit logits must be one vector per row, got shape {list(a.shape)}")
    if a.dtype.kind not in "iu" or a.size and (a.min() < -128 or a.max() > 127):
        raise DmxError("exit logits must be int8 codes (integers in [-128, 127])")
    return a.reshape(-1, a.shape[-1]).astype(np.int64)


def predicted_classes(logits) -> np.ndarray:
    """Per row, the first index of the largest logit."""
    return np.argmax(_rows(logits), axis=1)


def margins(logits) -> np.ndarray:
    """Per row, top-1 minus top-2 logit code (MAX_MARGIN with one logit)."""
    rows = _rows(logits)
    if rows.shape[1] == 1:
        return np.full(rows.shape[0], MAX_MARGIN, np.int64)
    top2 = np.sort(rows, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def softmax_max_codes(logits, input_scale: float) -> np.ndarray:
    """Per row, the int8 code of the largest integer-softmax probability."""
    if not (input_scale > 0 and math.isfinite(input_scale)):
        raise DmxError(f"the softmax exit policy needs the head's positive output scale, got {input_scale}")
    rows = _rows(logits)
    return fp.softmax_gemmlowp(rows, softmax_gemmlowp_params(1.0, float(input_scale))).max(axis=1)


def confidences(kind: str, logits, input_scale: float | None = None) -> np.ndarray:
    """Per row, the number the policy compares with the threshold."""
    if check_kind(kind) == "margin":
        return margins(logits)
    if input_scale is None:
        raise DmxError("the softmax exit policy needs the head's output scale")
    return softmax_max_codes(logits, input_scale)


def accepts(kind: str, logits, threshold: int, input_scale: float | None = None) -> bool:
    """Does one head's logit vector take the exit?"""
    return bool(confidences(kind, np.asarray(logits).reshape(1, -1), input_scale)[0] >= int(threshold))


def exits_taken(policy: ExitPolicy, head_logits: list, scales: list | None = None) -> np.ndarray:
    """Per row, the first exit whose head accepts, or len(head_logits) (the final classifier).

    head_logits[k] is exit k's [rows, classes] int8 codes; scales[k] its output scale (softmax).
    """
    k_heads = len(head_logits)
    if len(policy.thresholds) != k_heads:
        raise DmxError(f"the early-exit policy has {len(policy.thresholds)} threshold(s) for {k_heads} exit(s)")
    if not k_heads:
        raise DmxError("an early-exit model needs at least one exit")
    conf = [confidences(policy.kind, head_logits[k], None if scales is None else scales[k]) for k in range(k_heads)]
    return first_accepting(conf, policy.thresholds)


def first_accepting(confidences_per_exit: list, thresholds) -> np.ndarray:
    """Per row, the first exit whose confidence reaches its threshold, else the number of exits."""
    k_heads = len(confidences_per_exit)
    taken = np.full(len(confidences_per_exit[0]), k_heads, np.int64)
    for k in reversed(range(k_heads)):  # the shallowest accepting exit wins
        taken = np.where(np.asarray(confidences_per_exit[k]) >= thresholds[k], k, taken)
    return taken


def probability_threshold(p: float) -> int:
    """The softmax threshold code that accepts exactly the probabilities (code + 128) / 256 >= p."""
    if not 0.0 <= p <= 1.0:
        raise DmxError(f"a probability threshold must be in [0, 1], got {p}")
    return int(math.ceil(256 * p)) - 128
