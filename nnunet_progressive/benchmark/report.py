"""The benchmark report: the PGPS papers' tables, a Wilcoxon test across tasks, time to Dice, and plots.

Input: the run records of a results folder (``runs/<run_id>.json``, read as typed
:class:`~nnunet_progressive.core.records.BenchmarkRecord`; a damaged one is an error naming its file) and its
``spec.json`` (trainer entries, their labels and knobs, the reference). A "trainer" in the tables is a trainer
entry of the spec, named by its label (the trainer name unless the spec gives one), so one trainer with two knob
sets is two columns. Records made with settings the spec no longer has (an earlier version of the spec) are left
out and listed. A task is a dataset + configuration (+ plans where one dataset is trained with several plans).
Per task and trainer: mean Dice over folds and seeds, training time relative to the reference trainer's, and the
relative Dice change in percent; for PGPS runs also the ideal time ratio of the schedule (voxels processed), the
measured ratio of the training iterations alone, and the time spent switching stages. Across tasks: the mean
relative Dice gain per trainer and a two-sided Wilcoxon signed-rank test of the paired per-task mean Dice. Then the
papers' protocol (:mod:`.protocol`): the per-case Wilcoxon test, the spread across seeds, the Dice gain against the
datasets' foreground share, GPU hours and energy.

Training time of a run is ``train_wall_seconds`` (the sum of nnU-Net's epoch times, validation epochs included;
from run_summary.json or, for plain nnU-Net trainers, the epoch timestamps in checkpoint_final.pth); when
neither exists, the runner's subprocess wall time (which also includes start-up and the final validation).

Everything except :func:`write_report` and the ``plot_*`` functions is a pure function of plain data.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnunet_progressive.benchmark.imbalance import load_foreground
from nnunet_progressive.benchmark.protocol import plot_imbalance, protocol_sections
from nnunet_progressive.benchmark.results import load_preparations, load_records, read_per_case_dice
from nnunet_progressive.benchmark.rows import (
    EQUAL_TOLERANCE,
    RunRow,
    TaskTrainerRow,
    WilcoxonResult,
    wilcoxon_test,
)
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text
from nnunet_progressive.core.records import BENCHMARK_SPEC_JSON, BenchmarkRecord, RunResult
from nnunet_progressive.core.tables import csv_text, markdown_table, time_unit
from nnunet_progressive.core.validation import validate
from nnunet_progressive.stopping.time_to_dice import (
    Check,
    TimeToDiceRow,
    default_thresholds,
    plot_dice_vs_time,
    table_markdown,
    time_to_dice_table,
)

if TYPE_CHECKING:
    from nnunet_progressive.benchmark.spec import SpecTrainers

CONSTANT_PATCH_PREFIX = "nnUNetTrainer_ConstantPatch"
MAX_CLASSES_IN_TABLE = 8  # more classes (TotalSegmentator) stay in report.csv only


@dataclass(frozen=True)
class TrainerSummary:
    trainer: str
    n_tasks: int
    mean_relative_dice_pct: float | None
    mean_relative_time: float | None
    better: int
    equal: int
    worse: int
    wilcoxon: WilcoxonResult
    relative_dice_tasks: int = 0  # tasks the mean relative Dice averages (not those where the reference has 0)

    @property
    def note(self) -> str:
        """Caveats of the row: tasks without a relative Dice, then the Wilcoxon test's note."""
        notes = []
        if self.relative_dice_tasks < self.n_tasks:
            notes.append(f"mean Δ Dice over {self.relative_dice_tasks} of {self.n_tasks} tasks (the reference's "
                         f"Dice is 0 on the others, so no relative change exists there)")
        return "; ".join(notes + ([self.wilcoxon.note] if self.wilcoxon.note else []))


# ------------------------------------------------------------------------------------------ pure tables

def _mean(values: Sequence[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.fmean(present) if present else None


def run_rows(records: Sequence[BenchmarkRecord | Mapping[str, Any]]) -> list[RunRow]:
    """Records -> rows; the task label carries the plans only where a dataset+configuration has several."""
    typed = [r if isinstance(r, BenchmarkRecord) else BenchmarkRecord.model_validate(r) for r in records]
    plans_per_task: dict[tuple[str, str], set[str]] = {}
    for record in typed:
        plans_per_task.setdefault((record.dataset, record.configuration), set()).add(record.plans)
    rows = []
    for record in typed:
        result = record.result or RunResult()
        task = f"{record.dataset} {record.configuration}"
        if len(plans_per_task[(record.dataset, record.configuration)]) > 1:
            task += f" {record.plans}"
        seconds, source = result.train_wall_seconds, result.train_wall_source
        if seconds is None and record.runner_wall_seconds is not None and record.status == "done":
            seconds, source = record.runner_wall_seconds, "runner"
        checks = (result.time_to_dice or {}).get("checks")
        rows.append(RunRow(
            run_id=record.run_id, task=task, dataset=record.dataset, configuration=record.configuration,
            plans=record.plans, trainer=record.label or record.trainer, trainer_class=record.trainer,
            fold=record.fold, seed=record.seed, status=record.status, dice_mean=result.dice_mean,
            dice_per_class=dict(result.dice_per_class), class_names=dict(result.class_names),
            train_seconds=seconds, time_source=source, runner_wall_seconds=record.runner_wall_seconds,
            gpu_hours=record.gpu_hours, gpus_used=record.gpus_used, epochs_done=result.epochs_done,
            num_epochs=result.num_epochs, peak_gpu_memory_bytes=result.peak_gpu_memory_bytes,
            environment=dict(record.environment), time_to_dice=checks,
            iteration_seconds=result.train_iteration_seconds, ideal_time_ratio=result.ideal_time_ratio,
            switch_seconds=result.switch_seconds, fold_folder=result.fold_folder or record.fold_folder,
            energy_joules=record.energy_joules,
        ))
    return rows


def trainer_order(rows: Sequence[RunRow], preferred: Sequence[str] = ()) -> list[str]:
    """``preferred`` (the spec's order) first, then any other trainer in order of appearance."""
    seen = [t for t in preferred if any(r.trainer == t for r in rows)]
    for row in rows:
        if row.trainer not in seen:
            seen.append(row.trainer)
    return seen


def choose_reference(trainers: Sequence[str], preferred: str | None = None) -> str:
    """``preferred`` if given, else the first ``nnUNetTrainer_ConstantPatch*``, else ``nnUNetTrainer``, else the
    first trainer (``trainers`` in spec order)."""
    if not trainers:
        raise ProgressiveConfigError("no trainers to choose a reference from: the results hold no runs")
    if preferred is not None:
        if preferred not in trainers:
            raise ProgressiveConfigError(f"reference trainer {preferred!r} has no runs; trainers with runs: "
                                         f"{list(trainers)}: pick one of those (--reference)")
        return preferred
    for trainer in trainers:
        if trainer.startswith(CONSTANT_PATCH_PREFIX):
            return trainer
    return "nnUNetTrainer" if "nnUNetTrainer" in trainers else trainers[0]


def _tasks(rows: Sequence[RunRow]) -> list[str]:
    return list(dict.fromkeys(r.task for r in rows))


def class_labels(rows: Sequence[RunRow]) -> list[str]:
    """Every label key of the rows' per-class Dice, in numeric order ("2" before "10")."""
    return sorted({k for r in rows for k in r.dice_per_class}, key=lambda k: (len(k), k))


def mean_dice_per_class(runs: Sequence[RunRow]) -> dict[str, float]:
    """Mean Dice per class over runs, keyed by class name where the records name it, in label order."""
    labels = class_labels(runs)
    names = {k: v for r in runs for k, v in r.class_names.items()}
    means = {}
    for label in labels:
        mean = _mean([r.dice_per_class.get(label) for r in runs])
        if mean is not None:
            means[names.get(label, label)] = mean
    return means


def task_table(rows: Sequence[RunRow], trainers: Sequence[str], reference: str) -> list[TaskTrainerRow]:
    """Per task (in order of appearance) one row per trainer that has finished runs there."""
    table = []
    for task in _tasks(rows):
        done = {t: [r for r in rows if r.task == task and r.trainer == t and r.status == "done"] for t in trainers}
        ref_dice = _mean([r.dice_mean for r in done[reference]])
        ref_time = _mean([r.train_seconds for r in done[reference]])
        ref_iterations = _mean([r.iteration_seconds for r in done[reference]])
        for trainer in trainers:
            runs = done[trainer]
            if not runs:
                continue
            dices = [r.dice_mean for r in runs if r.dice_mean is not None]
            dice = _mean(dices)
            seconds = _mean([r.train_seconds for r in runs])
            memory = [r.peak_gpu_memory_bytes for r in runs if r.peak_gpu_memory_bytes is not None]
            iterations = _mean([r.iteration_seconds for r in runs])
            switch = _mean([r.switch_seconds / r.train_seconds for r in runs
                            if r.switch_seconds is not None and r.train_seconds])
            table.append(TaskTrainerRow(
                task=task, trainer=trainer, n_runs=len(runs), dice_mean=dice,
                dice_std=statistics.stdev(dices) if len(dices) > 1 else None, train_seconds=seconds,
                relative_time=None if seconds is None or not ref_time else seconds / ref_time,
                relative_dice_pct=None if dice is None or not ref_dice else 100.0 * (dice - ref_dice) / ref_dice,
                gpu_hours=_mean([r.gpu_hours for r in runs]), epochs=_mean([r.epochs_done for r in runs]),
                peak_gpu_memory_gib=max(memory) / 2**30 if memory else None, is_reference=trainer == reference,
                dice_per_class=mean_dice_per_class(runs),
                relative_iteration_time=None if iterations is None or not ref_iterations else
                iterations / ref_iterations,
                ideal_time_ratio=_mean([r.ideal_time_ratio for r in runs]), switch_overhead=switch,
            ))
    return table


def summary_table(table: Sequence[TaskTrainerRow], trainers: Sequence[str], reference: str) -> list[TrainerSummary]:
    """Per non-reference trainer: mean relative Dice gain and time over tasks, wins, Wilcoxon on task-mean Dice."""
    by_key = {(r.task, r.trainer): r for r in table}
    tasks = list(dict.fromkeys(r.task for r in table))
    summaries = []
    for trainer in trainers:
        if trainer == reference:
            continue
        pairs = [(by_key[(t, trainer)], by_key[(t, reference)]) for t in tasks
                 if (t, trainer) in by_key and (t, reference) in by_key
                 and by_key[(t, trainer)].dice_mean is not None and by_key[(t, reference)].dice_mean is not None]
        differences = [mine.dice_mean - ref.dice_mean for mine, ref in pairs]
        summaries.append(TrainerSummary(
            trainer=trainer, n_tasks=len(pairs),
            mean_relative_dice_pct=_mean([mine.relative_dice_pct for mine, _ in pairs]),
            relative_dice_tasks=sum(mine.relative_dice_pct is not None for mine, _ in pairs),
            mean_relative_time=_mean([mine.relative_time for mine, _ in pairs]),
            better=sum(d > EQUAL_TOLERANCE for d in differences),
            equal=sum(abs(d) <= EQUAL_TOLERANCE for d in differences),
            worse=sum(d < -EQUAL_TOLERANCE for d in differences),
            wilcoxon=wilcoxon_test(differences),
        ))
    return summaries


def run_label(row: RunRow, unique_trainer: bool) -> str:
    return row.trainer if unique_trainer else f"{row.trainer} fold {row.fold} seed {row.seed}"


def task_time_to_dice(rows: Sequence[RunRow], task: str, reference: str,
                      thresholds: Sequence[float] | None = None
                      ) -> tuple[dict[str, Sequence[Check]], str, list[TimeToDiceRow]] | None:
    """(checks per run label, reference label, table) for the runs of ``task`` that logged Dice checks.

    With repeats every run is compared with the reference trainer's run of the same fold and seed."""
    logged = [r for r in rows if r.task == task and r.time_to_dice]
    if not logged:
        return None
    counts = {t: sum(r.trainer == t for r in logged) for t in {r.trainer for r in logged}}

    def label(row: RunRow) -> str:
        return run_label(row, counts[row.trainer] == 1)

    runs = {label(r): r.time_to_dice for r in logged}
    ref_rows = [r for r in logged if r.trainer == reference]
    reference_label = label(ref_rows[0] if ref_rows else logged[0])
    paired = None
    if len(ref_rows) > 1:
        by_repeat = {(r.fold, r.seed): label(r) for r in ref_rows}
        paired = {label(r): by_repeat.get((r.fold, r.seed)) for r in logged}
    chosen = list(thresholds) if thresholds else default_thresholds(runs)
    return runs, reference_label, time_to_dice_table(runs, chosen, reference_label, paired)


# ------------------------------------------------------------------------------------------- rendering

def _fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def task_markdown(table: Sequence[TaskTrainerRow], task: str, unit: tuple[str, float]) -> str:
    name, per_unit = unit
    rows = [r for r in table if r.task == task]
    classes = list(dict.fromkeys(name for r in rows for name in r.dice_per_class))
    per_class = 0 < len(classes) <= MAX_CLASSES_IN_TABLE
    pgps = any(r.ideal_time_ratio is not None for r in rows)
    headers = ["Trainer", "Runs", "Dice", *(["Dice per class"] if per_class else []), "Δ Dice (%)",
               f"Train time ({name})", "Rel. time",
               *(["Rel. iteration time", "Ideal ratio", "Switch overhead (%)"] if pgps else []),
               "GPU h", "Epochs", "Peak GPU mem (GiB)"]
    body = []
    for row in rows:
        dice = _fmt(row.dice_mean, 4) + (f" ± {row.dice_std:.4f}" if row.dice_std is not None else "")
        classes_text = ", ".join(f"{c} {_fmt(row.dice_per_class.get(c), 3)}" for c in classes)
        pgps_cells = [_fmt(row.relative_iteration_time, 3), _fmt(row.ideal_time_ratio, 3),
                      _fmt(None if row.switch_overhead is None else 100 * row.switch_overhead, 1)]
        body.append([row.trainer + (" (ref)" if row.is_reference else ""), row.n_runs, dice,
                     *([classes_text] if per_class else []),
                     _signed(row.relative_dice_pct), _fmt(None if row.train_seconds is None else
                                                          row.train_seconds / per_unit, 2),
                     _fmt(row.relative_time, 3), *(pgps_cells if pgps else []), _fmt(row.gpu_hours, 2),
                     _fmt(row.epochs, 0), _fmt(row.peak_gpu_memory_gib, 2)])
    return markdown_table(headers, body)


def summary_markdown(summaries: Sequence[TrainerSummary]) -> str:
    headers = ["Trainer", "Tasks", "Mean Δ Dice (%)", "Mean rel. time", "Better / equal / worse", "Wilcoxon W",
               "p", "Note"]
    body = [[s.trainer, s.n_tasks, _signed(s.mean_relative_dice_pct), _fmt(s.mean_relative_time, 3),
             f"{s.better} / {s.equal} / {s.worse}", _fmt(s.wilcoxon.statistic, 1), _fmt(s.wilcoxon.p_value, 4),
             s.note] for s in summaries]
    return markdown_table(headers, body)


def runs_csv(rows: Sequence[RunRow]) -> str:
    """One line per run (times in seconds, memory in bytes)."""
    labels = class_labels(rows)
    headers = ["run_id", "task", "dataset", "configuration", "plans", "trainer", "trainer_class", "fold", "seed",
               "status", "dice_mean", *[f"dice_class_{k}" for k in labels], "train_wall_seconds", "time_source",
               "train_iteration_seconds", "ideal_time_ratio", "switch_seconds",
               "runner_wall_seconds", "gpus_used", "gpu_hours", "energy_joules", "epochs_done", "num_epochs",
               "peak_gpu_memory_bytes", "gpu_name", "device", "hostname", "nnunetv2_version", "torch_version",
               "package_version"]
    body = []
    for r in rows:
        env = r.environment
        body.append([r.run_id, r.task, r.dataset, r.configuration, r.plans, r.trainer, r.trainer_class or r.trainer,
                     r.fold, r.seed, r.status,
                     r.dice_mean, *[r.dice_per_class.get(k) for k in labels], r.train_seconds, r.time_source,
                     r.iteration_seconds, r.ideal_time_ratio, r.switch_seconds,
                     r.runner_wall_seconds, r.gpus_used, r.gpu_hours, r.energy_joules, r.epochs_done, r.num_epochs,
                     r.peak_gpu_memory_bytes, env.get("gpu_name"), env.get("device"), env.get("hostname"),
                     env.get("nnunetv2_version"), env.get("torch_version"), env.get("package_version")])
    return csv_text(headers, body)


def tasks_csv(table: Sequence[TaskTrainerRow]) -> str:
    headers = ["task", "trainer", "is_reference", "n_runs", "dice_mean", "dice_std", "relative_dice_pct",
               "train_wall_seconds", "relative_time", "relative_iteration_time", "ideal_time_ratio",
               "switch_overhead", "gpu_hours", "epochs", "peak_gpu_memory_gib"]
    return csv_text(headers, [[r.task, r.trainer, r.is_reference, r.n_runs, r.dice_mean, r.dice_std,
                               r.relative_dice_pct, r.train_seconds, r.relative_time, r.relative_iteration_time,
                               r.ideal_time_ratio, r.switch_overhead, r.gpu_hours, r.epochs,
                               r.peak_gpu_memory_gib] for r in table])


def summary_csv(summaries: Sequence[TrainerSummary], reference: str) -> str:
    headers = ["trainer", "reference", "n_tasks", "mean_relative_dice_pct", "relative_dice_tasks",
               "mean_relative_time", "better", "equal", "worse", "wilcoxon_n", "wilcoxon_statistic", "wilcoxon_p",
               "note"]
    return csv_text(headers, [[s.trainer, reference, s.n_tasks, s.mean_relative_dice_pct, s.relative_dice_tasks,
                               s.mean_relative_time, s.better, s.equal, s.worse, s.wilcoxon.n,
                               s.wilcoxon.statistic, s.wilcoxon.p_value, s.note] for s in summaries])


# ----------------------------------------------------------------------------------------------- plots

def _colors(trainers: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {t: cmap(i % 10) for i, t in enumerate(trainers)}


def plot_dice_vs_time_per_task(rows: Sequence[RunRow], trainers: Sequence[str], path: str | os.PathLike) -> None:
    """One subplot per task: final Dice against training time, a dot per run, a larger marker per trainer mean."""
    from matplotlib.figure import Figure

    done = [r for r in rows if r.status == "done" and r.dice_mean is not None and r.train_seconds is not None]
    tasks = _tasks(done) or ["(no finished runs)"]
    unit, per_unit = time_unit(max((r.train_seconds for r in done), default=1.0))
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    figure = Figure(figsize=(4.6 * ncols, 3.8 * nrows), layout="constrained")
    axes_list = figure.subplots(nrows, ncols, squeeze=False).ravel()
    colors = _colors(trainers)
    for axes, task in zip(axes_list, tasks):
        for trainer in trainers:
            mine = [r for r in done if r.task == task and r.trainer == trainer]
            if not mine:
                continue
            x = [r.train_seconds / per_unit for r in mine]
            y = [r.dice_mean for r in mine]
            axes.scatter(x, y, color=colors[trainer], alpha=0.5, s=18)
            axes.scatter([statistics.fmean(x)], [statistics.fmean(y)], color=colors[trainer], s=90, marker="D",
                         edgecolor="black", label=trainer)
        axes.set_title(task, fontsize="medium")
        axes.set_xlabel(f"training time ({unit})")
        axes.set_ylabel("validation Dice (foreground mean)")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="x-small")
    for axes in axes_list[len(tasks):]:
        axes.set_visible(False)
    atomic_save_figure(figure, path, dpi=110)


def plot_relative(table: Sequence[TaskTrainerRow], trainers: Sequence[str], reference: str,
                  path: str | os.PathLike) -> None:
    """Bars per task: training time relative to the reference (top) and relative Dice change in % (bottom)."""
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(r.task for r in table))
    others = [t for t in trainers if t != reference]
    by_key = {(r.task, r.trainer): r for r in table}
    figure = Figure(figsize=(max(6.0, 1.3 * len(tasks) * max(1, len(others)) + 2), 7.0), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    colors = _colors(trainers)
    width = 0.8 / max(1, len(others))
    for i, trainer in enumerate(others):
        xs = [k + (i - (len(others) - 1) / 2) * width for k in range(len(tasks))]
        times = [getattr(by_key.get((t, trainer)), "relative_time", None) for t in tasks]
        dices = [getattr(by_key.get((t, trainer)), "relative_dice_pct", None) for t in tasks]
        top.bar(xs, [math.nan if v is None else v for v in times], width, color=colors[trainer], label=trainer)
        bottom.bar(xs, [math.nan if v is None else v for v in dices], width, color=colors[trainer], label=trainer)
        for x, task, dice in zip(xs, tasks, dices):
            if dice is None and (task, trainer) in by_key:  # the reference's Dice is 0 or missing: no ratio
                bottom.annotate("n/a", (x, 0.0), xytext=(0, 3), textcoords="offset points", ha="center",
                                fontsize="x-small", color=colors[trainer])
    top.axhline(1.0, color="black", linewidth=0.8)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    top.set_title(f"Relative to {reference}", fontsize="medium")
    top.set_ylabel("training time (x reference)")
    bottom.set_ylabel("Dice change (%)\n(n/a: reference Dice 0)")
    bottom.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right", fontsize="small")
    for axes in (top, bottom):
        axes.grid(axis="y", alpha=0.3)
    if others:
        top.legend(fontsize="small", loc="best")
    atomic_save_figure(figure, path, dpi=110)


def plot_pgps_time_ratios(table: Sequence[TaskTrainerRow], path: str | os.PathLike) -> bool:
    """Per task and PGPS trainer: measured time ratio (epochs; training iterations alone) next to the schedule's
    ideal ratio (voxels processed). Returns False (and writes nothing) when no run has a PGPS schedule."""
    from matplotlib.figure import Figure

    rows = [r for r in table if r.ideal_time_ratio is not None]
    if not rows:
        return False
    names = [f"{r.trainer}\n{r.task}" for r in rows]
    series = (("epoch time (measured)", [r.relative_time for r in rows]),
              ("training iterations (measured)", [r.relative_iteration_time for r in rows]),
              ("ideal (voxels processed)", [r.ideal_time_ratio for r in rows]))
    figure = Figure(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.8), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        xs = [k + (i - 1) * width for k in range(len(rows))]
        axes.bar(xs, [math.nan if v is None else v for v in values], width, label=label)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(rows)), names, rotation=20, ha="right", fontsize="small")
    axes.set_ylabel("time relative to the reference")
    axes.set_title("PGPS: measured against ideal time ratio", fontsize="medium")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    atomic_save_figure(figure, path, dpi=110)
    return True


# ----------------------------------------------------------------------------------------------- writer

def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def read_spec_trainers(results_dir: str | os.PathLike) -> SpecTrainers | None:
    """The trainer entries, knobs and reference of ``results_dir/spec.json`` (None if there is none)."""
    from nnunet_progressive.benchmark.spec import SpecTrainers

    path = Path(results_dir) / BENCHMARK_SPEC_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise ProgressiveConfigError(f"{path} is not valid JSON ({error}); `nnprog benchmark run SPEC` writes it "
                                     f"again") from None
    return validate(SpecTrainers, data, str(path))


def current_records(records: Sequence[BenchmarkRecord], spec: SpecTrainers | None
                    ) -> tuple[list[BenchmarkRecord], list[BenchmarkRecord]]:
    """(records of the spec's trainer entries, records made with a trainer or settings the spec no longer has).

    A record takes the label of the entry with its trainer and settings; records without a settings id (written
    by a version of this package before runs had one) are kept as they are.
    """
    if spec is None:
        return list(records), []
    labels = {(v.trainer, v.settings_id): v.label for v in spec.variants()}
    kept, stale = [], []
    for record in records:
        if record.settings_id is None:
            kept.append(record)
        elif (record.trainer, record.settings_id) in labels:
            kept.append(record.model_copy(update={"label": labels[(record.trainer, record.settings_id)]}))
        else:
            stale.append(record)
    return kept, stale


def trainers_markdown(spec: SpecTrainers) -> str:
    """The trainer entries: label, trainer, settings id and the knobs that differ from the global ones."""
    body = [[v.label, v.trainer, v.settings_id,
             ", ".join(f"{k}={val}" for k, val in t.knobs.items()) or "-"]
            for v, t in zip(spec.variants(), spec.trainers)]
    globals_text = ", ".join(f"{k}={v}" for k, v in spec.knobs.items()) or "none"
    return (f"Global knobs: {globals_text}.\n\n"
            + markdown_table(["Label", "Trainer", "Settings id", "Own knobs"], body))


def write_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 reference: str | None = None, thresholds: Sequence[float] | None = None,
                 only_trainers: Sequence[str] | None = None) -> list[Path]:
    """Write report.md, report.csv (runs), tasks.csv, summary.csv, time_to_dice.csv and PNGs; returns the files.

    ``only_trainers``: report only these trainer labels (e.g. one architecture's runs of a spec holding several).
    """
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    records = load_records(results_dir)
    spec = read_spec_trainers(results_dir)
    records, stale = current_records(records, spec)
    spec_labels = [t.label for t in spec.trainers] if spec is not None else []
    rows = run_rows(records)
    if only_trainers:
        known = sorted({r.trainer for r in rows} | set(spec_labels))
        unknown = [t for t in only_trainers if t not in known]
        if unknown:
            raise ProgressiveConfigError(f"--trainers: {unknown} ran in no run of {results_dir}; its trainers: {known}")
        rows = [r for r in rows if r.trainer in only_trainers]
        spec_labels = [t for t in spec_labels if t in only_trainers]
    done = [r for r in rows if r.status == "done"]
    trainers = trainer_order(done or rows, spec_labels)
    if not trainers:
        raise ProgressiveConfigError(f"{results_dir / 'runs'} holds no run records of this spec yet; run `nnprog "
                                     f"benchmark run SPEC` first")
    preferred = spec.reference_trainer if spec is not None and spec.reference_trainer in trainers else None
    ref = choose_reference(trainers, reference or preferred)
    table = task_table(rows, trainers, ref)
    summaries = summary_table(table, trainers, ref)
    unit = time_unit(max((r.train_seconds or 0.0 for r in done), default=1.0))
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        atomic_write_text(out / name, text)
        written.append(out / name)

    sources = sorted({r.time_source for r in done if r.time_source})
    not_done = [r for r in rows if r.status != "done"]
    md = [f"# Benchmark report\n\nResults: `{results_dir}`. {len(done)} of {len(rows)} runs done"
          + (f"; not done: {len(not_done)} (listed at the end)" if not_done else "")
          + (f"; {len(stale)} record(s) of runs with settings the spec no longer has left out (listed at the end)"
             if stale else "")
          + (f"; only the runs of {', '.join(only_trainers)} (--trainers)" if only_trainers else "") + ".\n",
          f"Reference trainer: **{ref}**. Dice: nnU-Net's final validation, foreground mean, averaged over the "
          f"folds and seeds of a task (± standard deviation over runs). Δ Dice: relative change against the "
          f"reference in %. Rel. time: mean training time / the reference's. Training time source(s): "
          f"{', '.join(sources) or '-'} (run_summary / checkpoint_logging: sum of nnU-Net's epoch times; "
          f"runner: the nnUNetv2_train subprocess wall time). GPU h = training hours x GPUs per run.\n"]
    if any(r.ideal_time_ratio is not None for r in table):
        md.append("PGPS columns: Rel. iteration time = time of the training iterations alone (no validation, "
                  "checkpoints or plots) / the reference's; Ideal ratio = the schedule's voxels processed / the "
                  "planned patch's (what the iteration time would be if it scaled with voxels); Switch overhead = "
                  "time spent rebuilding the data loaders at stage switches / training time.\n")
    if spec is not None:
        md += ["## Trainers\n", trainers_markdown(spec)]
    md.append("## Per task\n")
    for task in _tasks(done):
        md += [f"### {task}\n", task_markdown(table, task, unit)]
    md += ["## Summary across tasks\n",
           f"Mean of the per-task values against {ref}; the Wilcoxon signed-rank test (two-sided) pairs the "
           f"per-task mean Dice of each trainer with the reference's.\n", summary_markdown(summaries)]
    protocol_md, protocol_files, imbalance = protocol_sections(
        rows, table, trainers, ref, {r.run_id: read_per_case_dice(r.fold_folder) or {} for r in done if r.fold_folder},
        load_foreground(results_dir))
    md += protocol_md
    for name, text in protocol_files.items():
        put(name, text)
    if imbalance:
        plot_imbalance(imbalance, trainers, ref, out / "imbalance.png")
        written.append(out / "imbalance.png")

    ttd_csv_rows: list[list[Any]] = []
    ttd_md: list[str] = []
    for task in _tasks(done):
        found = task_time_to_dice(done, task, ref, thresholds)
        if found is None:
            continue
        runs, reference_label, ttd_rows = found
        if not ttd_rows:
            ttd_md += [f"### {task}\n", "No Dice check of these runs reached a threshold yet (by default every "
                                          "0.05): no time to report.\n"]
            continue
        png = f"time_to_dice_{_slug(task)}.png"
        plot_dice_vs_time(runs, out / png, [r.threshold for r in ttd_rows], reference_label, title=task)
        written.append(out / png)
        ttd_md += [f"### {task}\n", table_markdown(ttd_rows, reference_label), f"\n![Dice vs time]({png})\n"]
        ttd_csv_rows += [[task, row.threshold, name, row.seconds[name], row.ratio[name],
                          row.reference.get(name, reference_label)] for row in ttd_rows for name in row.seconds]
    if ttd_md:
        md += ["## Time to Dice\n", "Training time (s, Dice checks excluded) until the validation Dice first "
               "reached each threshold, and the ratio to the reference run (of the same fold and seed where "
               "the reference has several).\n", *ttd_md]
        put("time_to_dice.csv", csv_text(["task", "threshold", "run", "train_wall_seconds", "ratio_to_reference",
                                          "reference"], ttd_csv_rows))

    preparations = [p for p in load_preparations(results_dir) if p.rank_seconds is not None]
    if preparations:
        md += ["## Preparation\n", "The similarity ranking the PDL trainers read (`nnprog rank`) is computed once per "
               "dataset, before training; its time is not in the training times above. Add it to a PDL run's time "
               "for the full cost.\n",
               markdown_table(["Dataset", "Ranking (s)"], [[p.dataset, _fmt(p.rank_seconds, 1)]
                                                           for p in preparations])]

    plot_dice_vs_time_per_task(rows, trainers, out / "dice_vs_time.png")
    plot_relative(table, trainers, ref, out / "relative_time_dice.png")
    written += [out / "dice_vs_time.png", out / "relative_time_dice.png"]
    md += ["## Plots\n", "![Dice vs training time per task](dice_vs_time.png)\n",
           "![Relative training time and Dice per task](relative_time_dice.png)\n"]
    if plot_pgps_time_ratios(table, out / "pgps_time_ratios.png"):
        written.append(out / "pgps_time_ratios.png")
        md.append("![PGPS: measured against ideal time ratio](pgps_time_ratios.png)\n")

    environments = {}
    for r in done:
        key = tuple(r.environment.get(k) for k in ("gpu_name", "device", "nnunetv2_version", "torch_version",
                                                     "package_version"))
        environments[key] = environments.get(key, 0) + 1
    md += ["## Environment\n", markdown_table(["GPU", "Device", "nnU-Net", "torch", "nnunet-progressive", "Runs"],
                                              [[*(v or "-" for v in k), n] for k, n in environments.items()])]
    if not_done:
        md += ["## Runs not done\n", markdown_table(["Run", "Status"], [[r.run_id, r.status] for r in not_done])]
    if stale:
        md += ["## Records left out\n", "Runs made with a trainer or settings (knobs, small network) that the spec no "
               "longer has; their records and folders are kept.\n",
               markdown_table(["Run", "Trainer", "Settings id", "Status"],
                              [[r.run_id, r.trainer, r.settings_id, r.status] for r in stale])]
    put("report.md", "\n".join(md))
    put("report.csv", runs_csv(rows))
    put("tasks.csv", tasks_csv(table))
    put("summary.csv", summary_csv(summaries, ref))
    return written
