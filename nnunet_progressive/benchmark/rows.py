"""The report's rows and its paired test, below both the report (:mod:`.report`) and the papers' protocol
(:mod:`.protocol`): one row per run, one per task and trainer, and the two-sided Wilcoxon signed-rank test.

Pure: plain data in, plain data out (scipy is imported when a test runs).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnunet_progressive.stopping.time_to_dice import Check

EQUAL_TOLERANCE = 1e-12
WILCOXON_MIN_TASKS = 6  # below this, the exact two-sided p-value cannot go under 0.05


@dataclass(frozen=True)
class RunRow:
    """One run, flattened from its record."""

    run_id: str
    task: str
    dataset: str
    configuration: str
    plans: str
    trainer: str  # the trainer entry's label (the trainer name unless the spec gives one)
    fold: int | str
    seed: int
    status: str
    trainer_class: str = ""
    dice_mean: float | None = None
    dice_per_class: Mapping[str, float] = field(default_factory=dict)
    class_names: Mapping[str, str] = field(default_factory=dict)
    train_seconds: float | None = None
    time_source: str | None = None
    runner_wall_seconds: float | None = None
    gpu_hours: float | None = None
    gpus_used: int | None = None
    epochs_done: int | None = None
    num_epochs: int | None = None
    peak_gpu_memory_bytes: int | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    time_to_dice: Sequence[Check] | None = None
    iteration_seconds: float | None = None  # the training iterations alone
    ideal_time_ratio: float | None = None  # PGPS: voxels processed relative to the planned patch
    switch_seconds: float | None = None  # PGPS: loader rebuilds at stage switches
    fold_folder: str | None = None  # where its validation (per-case Dice) is
    energy_joules: float | None = None  # GPU energy of its attempts (NVML); None where not reported


@dataclass(frozen=True)
class TaskTrainerRow:
    """One trainer on one task: means over its finished runs, relative values against the reference."""

    task: str
    trainer: str
    n_runs: int
    dice_mean: float | None
    dice_std: float | None
    train_seconds: float | None
    relative_time: float | None
    relative_dice_pct: float | None
    gpu_hours: float | None
    epochs: float | None
    peak_gpu_memory_gib: float | None
    is_reference: bool
    dice_per_class: Mapping[str, float] = field(default_factory=dict)  # class name (or label) -> mean Dice
    relative_iteration_time: float | None = None  # training iterations alone, against the reference's
    ideal_time_ratio: float | None = None  # PGPS schedule: voxels processed / the planned patch's
    switch_overhead: float | None = None  # PGPS: stage-switch seconds / training seconds


@dataclass(frozen=True)
class WilcoxonResult:
    n: int  # paired tasks
    statistic: float | None
    p_value: float | None
    note: str


def wilcoxon_test(differences: Sequence[float], unit: str = "task") -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of paired differences; zero differences are dropped (Wilcoxon's rule).

    Never raises on degenerate input: no pairs or only zero differences give a note instead of a p-value error.
    ``unit``: what a pair is (``task``, ``case``), for the notes.
    """
    n = len(differences)
    if n == 0:
        return WilcoxonResult(0, None, None, f"no {unit} has results for both trainers")
    nonzero = [float(d) for d in differences if abs(d) > EQUAL_TOLERANCE]
    if not nonzero:
        return WilcoxonResult(n, 0.0, 1.0, "all paired differences are zero: no difference to test")
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = wilcoxon(nonzero, alternative="two-sided")
    m = len(nonzero)
    notes = []
    if m < n:
        notes.append(f"{n - m} tied {unit}(s) dropped")
    if m < WILCOXON_MIN_TASKS:
        noun = "difference" if m == 1 else "differences"
        notes.append(f"only {m} non-zero {noun}: the smallest possible two-sided p is {2.0 ** (1 - m):.3g}, "
                     f"so the test has little power")
    return WilcoxonResult(n, float(result.statistic), float(result.pvalue), "; ".join(notes))
