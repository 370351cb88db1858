"""Time-to-Dice bookkeeping and Dice aggregation for stopping at a target Dice (pure functions)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def dice_from_counts(tp: float, fp: float, fn: float) -> float:
    """2TP / (2TP + FP + FN); NaN where reference and prediction are both empty (nnU-Net's convention)."""
    denominator = 2 * tp + fp + fn
    return float("nan") if denominator == 0 else 2 * tp / denominator


def aggregate_dice(per_case: Sequence[Sequence[float]]) -> tuple[float, list[float]]:
    """Per class: mean over cases ignoring NaN; overall: mean of the classes (nnU-Net's foreground_mean)."""
    values = np.asarray(per_case, dtype=float)
    if values.size == 0:
        raise ValueError("no cases to aggregate the Dice over")
    with np.errstate(all="ignore"):
        per_class = [float(np.nanmean(column)) if np.any(~np.isnan(column)) else float("nan")
                     for column in values.T]
    finite = [d for d in per_class if not math.isnan(d)]
    return (float(np.mean(finite)) if finite else float("nan")), per_class


def is_check_epoch(epoch: int, check_every: int, num_epochs: int) -> bool:
    """Checks after every ``check_every``-th epoch (0-based ``epoch`` just finished) and after the last."""
    return (epoch + 1) % check_every == 0 or epoch + 1 == num_epochs


def reached(checks: Sequence[dict], target: float | None) -> dict | None:
    """The first check whose Dice is at least ``target`` (None if none or no target)."""
    if target is None:
        return None
    for check in checks:
        if check["dice"] >= target:
            return {k: check[k] for k in ("epoch", "train_wall_seconds", "dice")}
    return None


def epoch_training_seconds(starts: Sequence[float], ends: Sequence[float],
                           untimed: Mapping[int, float] | None = None) -> list[float]:
    """Wall seconds of each finished epoch without the time spent outside training (``untimed``: epoch ->
    seconds, e.g. Dice checks). ``starts``/``ends`` are nnU-Net's logged epoch timestamps; the epochs counted
    are those with both."""
    untimed = untimed or {}
    count = min(len(starts), len(ends))
    return [max(0.0, float(ends[e]) - float(starts[e]) - float(untimed.get(e, 0.0))) for e in range(count)]


def train_wall_seconds(starts: Sequence[float], ends: Sequence[float],
                       untimed: Mapping[int, float] | None = None) -> float:
    """Training wall time of a run so far (the sum of :func:`epoch_training_seconds`): what run_summary.json,
    time_to_dice.json and curriculum.json report."""
    return float(sum(epoch_training_seconds(starts, ends, untimed)))
