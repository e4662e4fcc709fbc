"""Early-exit thresholds from validation data: the cheapest policy that keeps an accuracy,
or the most accurate one within an average cost.

Numpy only: it works on what a validation pass collected (each head's
confidence and predicted class per input, the labels, the cost of exiting at
each exit), so that it is tested on hand-made numbers. Only thresholds at an
observed confidence (or NEVER) are tried: any other threshold takes the same
exits on the data as the next observed value above it, which is the larger,
more cautious choice.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import DmxError
from ..graph.exit_policy import NEVER, ExitPolicy, first_accepting as exits_for

MAX_COMBINATIONS = 20000  # thresholds tried jointly; beyond it each exit's candidates are thinned by quantile


@dataclass(frozen=True)
class ThresholdChoice:
    policy: ExitPolicy
    accuracy: float  # on the validation data, with early exit
    average_cost: float  # MACs per input, with early exit
    exit_fractions: tuple[float, ...]  # per exit, then the final classifier
    baseline_accuracy: float  # the final classifier on every input
    full_cost: int  # MACs of the whole model (every stage and head)


def _candidates(conf: np.ndarray, kind: str, per_exit: int) -> np.ndarray:
    values = np.unique(conf)
    if len(values) + 1 > per_exit:
        values = np.unique(np.quantile(values, np.linspace(0, 1, per_exit - 1), method="higher"))
    return np.append(values, NEVER[kind])


def select_thresholds(kind: str, confidences: list[np.ndarray], predictions: list[np.ndarray], labels: np.ndarray,
                      costs: list[int], target_accuracy: float | None = None, target_cost: float | None = None,
                      max_accuracy_drop: float | None = None) -> ThresholdChoice:
    """Thresholds for exactly one target: accuracy >= target_accuracy (or >= the final classifier's
    minus max_accuracy_drop) at the least average cost, or average cost <= target_cost at the best
    accuracy. predictions[k] and costs[k] cover the exits and then the final classifier."""
    given = [t is not None for t in (target_accuracy, target_cost, max_accuracy_drop)]
    if sum(given) != 1:
        raise DmxError("choose early-exit thresholds for one target: target_accuracy, target_cost or "
                       "max_accuracy_drop")
    heads, labels = len(confidences), np.asarray(labels)
    if not heads or len(predictions) != heads + 1 or len(costs) != heads + 1 or not len(labels):
        raise DmxError("threshold selection needs validation inputs and, per exit and for the final "
                       "classifier, predictions and a cost")
    correct = np.stack([np.asarray(p) == labels for p in predictions])  # [exits + final, inputs]
    cost = np.asarray(costs, np.float64)
    baseline = float(correct[-1].mean())
    if max_accuracy_drop is not None:
        target_accuracy = baseline - max_accuracy_drop
    per_exit = max(2, int(MAX_COMBINATIONS ** (1.0 / heads)))
    grids = [_candidates(np.asarray(c), kind, per_exit) for c in confidences]
    cols = np.arange(len(labels))
    best, best_key = None, None
    for ts in itertools.product(*grids):
        taken = exits_for(confidences, ts)
        acc = float(correct[taken, cols].mean())
        avg = float(cost[taken].mean())
        cautious = tuple(-int(t) for t in ts)
        if target_accuracy is not None:
            key = None if acc < target_accuracy - 1e-12 else (avg, -acc, cautious)
        else:
            key = None if avg > target_cost + 1e-9 else (-acc, avg, cautious)
        if key is not None and (best_key is None or key < best_key):
            best, best_key = (ts, taken, acc, avg), key
    if best is None:
        if target_cost is not None:
            cheapest = float(cost[exits_for(confidences, [g[0] for g in grids])].mean())
            raise DmxError(f"no early-exit thresholds reach an average cost of {target_cost:g} MACs on the "
                           f"validation data (the cheapest reaches {cheapest:g})")
        ts = tuple(int(NEVER[kind]) for _ in range(heads))  # the target is above even the full model
        taken = exits_for(confidences, ts)
        best = (ts, taken, baseline, float(cost[-1]))
    ts, taken, acc, avg = best
    fractions = tuple(float((taken == k).mean()) for k in range(heads + 1))
    return ThresholdChoice(ExitPolicy(kind, tuple(int(t) for t in ts)), acc, avg, fractions, baseline,
                           int(costs[-1]))
