"""The papers' protocol in the report: per-case Wilcoxon, spread across seeds, Dice gain against foreground share,
GPU hours and energy.

- Per-case test (the MICCAI paper tested per-case Dice): each case's Dice (mean over its labels, nnU-Net's
  ``metric_per_case``) is averaged over the seeds of a trainer; the cases both a trainer and the reference
  validated are paired, and a two-sided Wilcoxon signed-rank test is run per task and over all tasks' cases
  pooled (beside the report's task-level test of per-task means).
- Spread across seeds (the journal's "lower variance across runs"): per task, trainer and fold, the standard
  deviation of the runs' Dice across seeds; its mean over folds, and its ratio to the reference's.
- Imbalance (the "largest gains on imbalanced tasks" claim): per task the dataset's foreground share
  (:mod:`.imbalance`) next to each trainer's relative Dice change against the reference, and per trainer the
  Spearman rank correlation of gain and share (a negative rho: larger gains where the foreground is rarer).
- Cost: per task and trainer the GPU hours (training hours x GPUs) and the GPU energy (NVML, where reported).

Everything except :func:`plot_imbalance` is a pure function of plain data.
"""
from __future__ import annotations

import math
import os
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from nnunet_progressive.benchmark.imbalance import ForegroundShare
from nnunet_progressive.benchmark.rows import (
    EQUAL_TOLERANCE,
    RunRow,
    TaskTrainerRow,
    WilcoxonResult,
    wilcoxon_test,
)
from nnunet_progressive.core.io import atomic_save_figure
from nnunet_progressive.core.tables import csv_text, markdown_table

ALL_TASKS = "all tasks (cases pooled)"
SPEARMAN_MIN_TASKS = 3
JOULES_PER_KWH = 3.6e6


# ------------------------------------------------------------------------------------------ per-case test

@dataclass(frozen=True)
class CaseDice:
    """One validation case of one run: its Dice, the mean over its labels."""

    task: str
    trainer: str
    fold: int | str
    seed: int
    case: str
    dice: float


@dataclass(frozen=True)
class PerCaseTest:
    task: str  # a task, or ALL_TASKS
    trainer: str
    n_cases: int
    mean_difference: float | None  # mean over cases of (trainer - reference) Dice
    better: int
    worse: int
    wilcoxon: WilcoxonResult


def case_dice_of_runs(rows: Sequence[RunRow], per_case: Mapping[str, Mapping[str, float]]) -> list[CaseDice]:
    """The finished runs' per-case Dice (``per_case``: run id -> case -> Dice, as read from each fold folder)."""
    return [CaseDice(r.task, r.trainer, r.fold, r.seed, case, dice)
            for r in rows if r.status == "done" for case, dice in per_case.get(r.run_id, {}).items()]


def mean_over_seeds(cases: Sequence[CaseDice]) -> dict[tuple[str, str], dict[str, float]]:
    """(task, trainer) -> case -> Dice averaged over the seeds (and folds) that validated the case."""
    collected: dict[tuple[str, str], dict[str, list[float]]] = {}
    for c in cases:
        collected.setdefault((c.task, c.trainer), {}).setdefault(c.case, []).append(c.dice)
    return {key: {case: statistics.fmean(v) for case, v in by_case.items()} for key, by_case in collected.items()}


def _paired_test(task: str, trainer: str, pairs: Sequence[tuple[float, float]]) -> PerCaseTest:
    differences = [mine - ref for mine, ref in pairs]
    return PerCaseTest(task, trainer, len(pairs), statistics.fmean(differences) if differences else None,
                       sum(d > EQUAL_TOLERANCE for d in differences), sum(d < -EQUAL_TOLERANCE for d in differences),
                       wilcoxon_test(differences, unit="case"))


def per_case_tests(cases: Sequence[CaseDice], trainers: Sequence[str], reference: str) -> list[PerCaseTest]:
    """Per non-reference trainer: a test per task (cases paired with the reference's), then all tasks pooled."""
    means = mean_over_seeds(cases)
    tasks = list(dict.fromkeys(c.task for c in cases))
    tests = []
    for trainer in trainers:
        if trainer == reference:
            continue
        pooled: list[tuple[float, float]] = []
        for task in tasks:
            mine, ref = means.get((task, trainer), {}), means.get((task, reference), {})
            pairs = [(mine[case], ref[case]) for case in mine if case in ref]
            if pairs:
                tests.append(_paired_test(task, trainer, pairs))
                pooled += pairs
        if len(tasks) > 1 and pooled:
            tests.append(_paired_test(ALL_TASKS, trainer, pooled))
    return tests


# --------------------------------------------------------------------------------------- spread over seeds

# Below this SD of the reference's Dice (repeats agreeing to the third decimal) a ratio to it measures noise
# (offline benchmark, 533: a reference SD of 0.0001 made an SD of 0.35 read 5875x): no ratio is given.
MIN_REFERENCE_SD = 0.001


@dataclass(frozen=True)
class SeedSpread:
    task: str
    trainer: str
    seeds: int  # the most seeds any fold of it has
    folds: int  # folds with at least two seeds
    dice_std: float | None  # mean over those folds of the Dice's standard deviation across seeds
    dice_variance: float | None  # likewise, the variance
    std_vs_reference: float | None = None  # dice_std / the reference's on the task


def seed_spread(rows: Sequence[RunRow], trainers: Sequence[str], reference: str) -> list[SeedSpread]:
    """Per task and trainer: the spread of the final Dice across seeds (sample SD per fold, averaged over folds)."""
    tasks = list(dict.fromkeys(r.task for r in rows))
    spreads = []
    for task in tasks:
        found = {}
        for trainer in trainers:
            by_fold: dict[int | str, list[float]] = {}
            for r in rows:
                if r.task == task and r.trainer == trainer and r.status == "done" and r.dice_mean is not None:
                    by_fold.setdefault(r.fold, []).append(r.dice_mean)
            if not by_fold:
                continue
            repeated = [v for v in by_fold.values() if len(v) > 1]
            stds = [statistics.stdev(v) for v in repeated]
            found[trainer] = SeedSpread(task, trainer, max(len(v) for v in by_fold.values()), len(repeated),
                                        statistics.fmean(stds) if stds else None,
                                        statistics.fmean(statistics.variance(v) for v in repeated) if repeated else
                                        None)
        ref = found.get(reference)
        for trainer, spread in found.items():
            ratio = None
            if (trainer != reference and ref is not None and ref.dice_std is not None
                    and ref.dice_std >= MIN_REFERENCE_SD and spread.dice_std is not None):
                ratio = spread.dice_std / ref.dice_std
            spreads.append(replace(spread, std_vs_reference=ratio))
    return spreads


# ------------------------------------------------------------------------------------------- imbalance

@dataclass(frozen=True)
class ImbalanceRow:
    task: str
    dataset: str
    foreground_share: float
    smallest_label: str | None
    smallest_label_share: float | None
    relative_dice_pct: Mapping[str, float | None] = field(default_factory=dict)  # trainer -> Δ Dice (%)


@dataclass(frozen=True)
class ImbalanceCorrelation:
    trainer: str
    n_tasks: int
    spearman_rho: float | None
    p_value: float | None
    note: str


def imbalance_table(table: Sequence[TaskTrainerRow], task_datasets: Mapping[str, str],
                    shares: Mapping[str, ForegroundShare], reference: str) -> list[ImbalanceRow]:
    """Per task whose dataset's share is known (rarest foreground first): the share and each trainer's gain."""
    rows = []
    for task in dict.fromkeys(r.task for r in table):
        share = shares.get(task_datasets.get(task, ""))
        if share is None:
            continue
        gains = {r.trainer: r.relative_dice_pct for r in table if r.task == task and r.trainer != reference}
        rows.append(ImbalanceRow(task, share.dataset, share.foreground_share, share.smallest_label,
                                 share.smallest_label_share, gains))
    return sorted(rows, key=lambda r: r.foreground_share)


def imbalance_correlation(rows: Sequence[ImbalanceRow], trainers: Sequence[str],
                          reference: str) -> list[ImbalanceCorrelation]:
    """Per non-reference trainer: Spearman's rho of (foreground share, relative Dice change) over tasks."""
    from scipy.stats import spearmanr

    found = []
    for trainer in trainers:
        if trainer == reference:
            continue
        pairs = [(r.foreground_share, r.relative_dice_pct[trainer]) for r in rows
                 if r.relative_dice_pct.get(trainer) is not None]
        if len(pairs) < SPEARMAN_MIN_TASKS:
            found.append(ImbalanceCorrelation(trainer, len(pairs), None, None,
                                              f"needs at least {SPEARMAN_MIN_TASKS} tasks with a share and a gain"))
            continue
        shares, gains = zip(*pairs)
        if len(set(shares)) == 1 or len(set(gains)) == 1:
            found.append(ImbalanceCorrelation(trainer, len(pairs), None, None, "constant shares or gains: no rank "
                                              "correlation"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = spearmanr(shares, gains)
        note = "negative: larger gains where the foreground is rarer" if result.statistic < 0 else (
            "not negative: gains do not grow as the foreground gets rarer")
        found.append(ImbalanceCorrelation(trainer, len(pairs), float(result.statistic), float(result.pvalue), note))
    return found


# ------------------------------------------------------------------------------------------------ cost

@dataclass(frozen=True)
class CostRow:
    task: str
    trainer: str
    runs: int
    gpu_hours: float | None  # sum over its runs (None on CPU)
    energy_kwh: float | None  # sum over the runs that reported it
    energy_runs: int  # runs whose energy was reported


def cost_table(rows: Sequence[RunRow], trainers: Sequence[str]) -> list[CostRow]:
    """Per task and trainer: the finished runs' GPU hours and GPU energy (NVML)."""
    costs = []
    for task in dict.fromkeys(r.task for r in rows):
        for trainer in trainers:
            done = [r for r in rows if r.task == task and r.trainer == trainer and r.status == "done"]
            if not done:
                continue
            hours = [r.gpu_hours for r in done if r.gpu_hours is not None]
            energy = [r.energy_joules for r in done if r.energy_joules is not None]
            costs.append(CostRow(task, trainer, len(done), sum(hours) if hours else None,
                                 sum(energy) / JOULES_PER_KWH if energy else None, len(energy)))
    return costs


# ------------------------------------------------------------------------------------------- rendering

def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def per_case_markdown(tests: Sequence[PerCaseTest]) -> str:
    return markdown_table(
        ["Task", "Trainer", "Cases", "Mean Δ Dice (abs.)", "Better / worse", "Wilcoxon W", "p", "Note"],
        [[t.task, t.trainer, t.n_cases, _signed(t.mean_difference, 4), f"{t.better} / {t.worse}",
          _fmt(t.wilcoxon.statistic, 1), _fmt(t.wilcoxon.p_value, 4), t.wilcoxon.note] for t in tests])


def per_case_csv(tests: Sequence[PerCaseTest], reference: str) -> str:
    return csv_text(["task", "trainer", "reference", "n_cases", "mean_dice_difference", "better", "worse",
                     "wilcoxon_statistic", "wilcoxon_p", "note"],
                    [[t.task, t.trainer, reference, t.n_cases, t.mean_difference, t.better, t.worse,
                      t.wilcoxon.statistic, t.wilcoxon.p_value, t.wilcoxon.note] for t in tests])


def seed_spread_markdown(spreads: Sequence[SeedSpread]) -> str:
    return markdown_table(["Task", "Trainer", "Seeds", "Folds", "SD of Dice across seeds", "Variance",
                           "SD / reference's"],
                          [[s.task, s.trainer, s.seeds, s.folds, _fmt(s.dice_std, 4), _fmt(s.dice_variance, 6),
                            _fmt(s.std_vs_reference, 2)] for s in spreads])


def seed_spread_csv(spreads: Sequence[SeedSpread]) -> str:
    return csv_text(["task", "trainer", "seeds", "folds", "dice_std_across_seeds", "dice_variance_across_seeds",
                     "std_vs_reference"],
                    [[s.task, s.trainer, s.seeds, s.folds, s.dice_std, s.dice_variance, s.std_vs_reference]
                     for s in spreads])


def imbalance_markdown(rows: Sequence[ImbalanceRow], trainers: Sequence[str], reference: str) -> str:
    others = [t for t in trainers if t != reference]
    return markdown_table(
        ["Task", "Foreground (%)", "Rarest label", "Its share (%)", *[f"Δ Dice {t} (%)" for t in others]],
        [[r.task, _fmt(100 * r.foreground_share, 3), r.smallest_label or "-",
          _fmt(None if r.smallest_label_share is None else 100 * r.smallest_label_share, 3),
          *[_signed(r.relative_dice_pct.get(t)) for t in others]] for r in rows])


def imbalance_csv(rows: Sequence[ImbalanceRow], trainers: Sequence[str], reference: str) -> str:
    others = [t for t in trainers if t != reference]
    return csv_text(["task", "dataset", "foreground_share", "smallest_label", "smallest_label_share",
                     *[f"relative_dice_pct_{t}" for t in others]],
                    [[r.task, r.dataset, r.foreground_share, r.smallest_label, r.smallest_label_share,
                      *[r.relative_dice_pct.get(t) for t in others]] for r in rows])


def correlation_markdown(correlations: Sequence[ImbalanceCorrelation]) -> str:
    return markdown_table(["Trainer", "Tasks", "Spearman rho (share, Δ Dice)", "p", "Note"],
                          [[c.trainer, c.n_tasks, _fmt(c.spearman_rho, 3), _fmt(c.p_value, 4), c.note]
                           for c in correlations])


def cost_markdown(costs: Sequence[CostRow]) -> str:
    return markdown_table(["Task", "Trainer", "Runs", "GPU h (sum)", "GPU energy (kWh, sum)", "Runs with energy"],
                          [[c.task, c.trainer, c.runs, _fmt(c.gpu_hours, 2),
                            "not reported" if c.energy_kwh is None else f"{c.energy_kwh:.3g}",
                            f"{c.energy_runs} of {c.runs}"] for c in costs])


def plot_imbalance(rows: Sequence[ImbalanceRow], trainers: Sequence[str], reference: str,
                   path: str | os.PathLike) -> None:
    """Relative Dice change against the reference over the dataset's foreground share (log axis), per trainer."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0), layout="constrained")
    axes = figure.subplots()
    others = [t for t in trainers if t != reference]
    colors = {t: f"C{i}" for i, t in enumerate(others)}
    for trainer in others:
        points = [(100 * r.foreground_share, r.relative_dice_pct[trainer], r.task) for r in rows
                  if r.relative_dice_pct.get(trainer) is not None]
        if not points:
            continue
        xs, ys, names = zip(*points)
        axes.scatter(xs, ys, color=colors[trainer], label=trainer, s=36)
        for x, y, name in points:
            axes.annotate(name.split(" ")[0].split("_", 1)[-1], (x, y), xytext=(3, 3), textcoords="offset points",
                          fontsize="x-small", color=colors[trainer])
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("foreground share of the training labels (%, log)")
    axes.set_ylabel(f"Dice change against {reference} (%)")
    axes.set_title("Dice gain against class imbalance", fontsize="medium")
    axes.grid(alpha=0.3, which="both")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    atomic_save_figure(figure, path, dpi=110)


# ---------------------------------------------------------------------------------------------- sections

def protocol_sections(rows: Sequence[RunRow], table: Sequence[TaskTrainerRow], trainers: Sequence[str],
                      reference: str, per_case: Mapping[str, Mapping[str, float]],
                      shares: Mapping[str, ForegroundShare]) -> tuple[list[str], dict[str, str], list[ImbalanceRow]]:
    """(markdown blocks, CSV name -> text, imbalance rows to plot) of the protocol's part of the report.

    ``per_case``: run id -> case -> Dice of the finished runs whose validation has per-case metrics; ``shares``:
    dataset -> its foreground share. A part without data says why instead of showing an empty table."""
    md = ["## Protocol: per-case test, spread across seeds, imbalance, cost\n"]
    files: dict[str, str] = {}
    tests = per_case_tests(case_dice_of_runs(rows, per_case), trainers, reference)
    md.append("### Per-case Wilcoxon test\n")
    if tests:
        md += [f"Each validation case's Dice (mean over its labels, nnU-Net's metric_per_case) averaged over the "
               f"seeds of a trainer, paired by case with {reference}'s; two-sided Wilcoxon signed-rank test per "
               f"task and over all tasks' cases pooled. The task-level test is in the summary above.\n",
               per_case_markdown(tests)]
        files["per_case_tests.csv"] = per_case_csv(tests, reference)
    else:
        md.append("No finished run has per-case metrics (validation/summary.json's metric_per_case) paired with "
                  "the reference's: nothing to test per case.\n")
    spreads = seed_spread(rows, trainers, reference)
    md.append("### Spread across seeds\n")
    if any(s.folds for s in spreads):
        md += ["Per fold, the sample standard deviation (and variance) of the final Dice across seeds; the mean "
               "over the folds with at least two seeds. SD / reference's below 1: steadier than the reference; "
               f"'-' where the reference's SD is below {MIN_REFERENCE_SD} (a ratio to it would measure noise).\n",
               seed_spread_markdown(spreads)]
        files["seed_spread.csv"] = seed_spread_csv(spreads)
    else:
        md.append("Every fold has one seed: no spread across seeds (list several `seeds:` in the spec, with "
                  "`seed_training: true` to seed each).\n")
    task_datasets = {r.task: r.dataset for r in rows}
    imbalance = imbalance_table(table, task_datasets, shares, reference)
    md.append("### Dice gain against foreground share\n")
    if imbalance:
        md += ["Foreground share: mean over training cases of labelled voxels / all voxels (raw labels); rarest "
               "label: the label with the smallest share. Δ Dice: relative change of the task's mean Dice "
               f"against {reference}. Spearman's rho over tasks: negative if gains grow as the foreground gets "
               "rarer.\n", imbalance_markdown(imbalance, trainers, reference), "",
               correlation_markdown(imbalance_correlation(imbalance, trainers, reference)),
               "\n![Dice gain against foreground share](imbalance.png)\n"]
        files["imbalance.csv"] = imbalance_csv(imbalance, trainers, reference)
    else:
        md.append("No foreground share is known for these datasets (measured from the raw labels when `nnprog "
                  "benchmark run` prepares a dataset; a dataset given only preprocessed has none).\n")
    md += ["### GPU hours and energy\n", "Per task and trainer, summed over its finished runs: GPU h = training "
           "hours x GPUs per run; energy = NVML's energy counter of the run's GPU read when nnUNetv2_train started "
           "and ended (the whole device, start-up and final validation included; not reported on CPU or where the "
           "device has no counter). Per run: report.csv.\n", cost_markdown(cost_table(rows, trainers))]
    return md, files, imbalance
