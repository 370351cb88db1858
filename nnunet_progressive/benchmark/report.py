"""The benchmark report: the PGPS papers' tables, a Wilcoxon test across tasks, time to Dice, and plots.

Input: the run records of a results folder (``runs/<run_id>.json``, see :mod:`nnunet_progressive.benchmark.run`)
and its ``spec.json`` (trainer order, reference trainer). A task is a dataset + configuration (+ plans where one
dataset is trained with several plans). Per task and trainer: mean Dice over folds and seeds, training time
relative to the reference trainer's, and the relative Dice change in percent. Across tasks: the mean relative
Dice gain per trainer and a two-sided Wilcoxon signed-rank test of the paired per-task mean Dice.

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
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text
from nnunet_progressive.stopping.time_to_dice import (
    Check,
    TimeToDiceRow,
    csv_text,
    default_thresholds,
    markdown_table,
    plot_dice_vs_time,
    table_markdown,
    time_to_dice_table,
    time_unit,
)

CONSTANT_PATCH_PREFIX = "nnUNetTrainer_ConstantPatch"
EQUAL_TOLERANCE = 1e-12
MAX_CLASSES_IN_TABLE = 8  # more classes (TotalSegmentator) stay in report.csv only
WILCOXON_MIN_TASKS = 6  # below this, the exact two-sided p-value cannot go under 0.05


@dataclass(frozen=True)
class RunRow:
    """One run, flattened from its record."""

    run_id: str
    task: str
    dataset: str
    configuration: str
    plans: str
    trainer: str
    fold: int | str
    seed: int
    status: str
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


@dataclass(frozen=True)
class WilcoxonResult:
    n: int  # paired tasks
    statistic: float | None
    p_value: float | None
    note: str


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


def run_rows(records: Sequence[Mapping[str, Any]]) -> list[RunRow]:
    """Records -> rows; the task label carries the plans only where a dataset+configuration has several."""
    plans_per_task: dict[tuple[str, str], set[str]] = {}
    for record in records:
        plans_per_task.setdefault((record["dataset"], record["configuration"]), set()).add(record["plans"])
    rows = []
    for record in records:
        result = record.get("result") or {}
        task = f"{record['dataset']} {record['configuration']}"
        if len(plans_per_task[(record["dataset"], record["configuration"])]) > 1:
            task += f" {record['plans']}"
        seconds, source = result.get("train_wall_seconds"), result.get("train_wall_source")
        if seconds is None and record.get("runner_wall_seconds") is not None and record.get("status") == "done":
            seconds, source = record["runner_wall_seconds"], "runner"
        checks = (result.get("time_to_dice") or {}).get("checks")
        rows.append(RunRow(
            run_id=record["run_id"], task=task, dataset=record["dataset"], configuration=record["configuration"],
            plans=record["plans"], trainer=record.get("label") or record["trainer"], fold=record["fold"],
            seed=int(record["seed"]),
            status=record.get("status", "new"), dice_mean=result.get("dice_mean"),
            dice_per_class=dict(result.get("dice_per_class") or {}),
            class_names={str(k): str(v) for k, v in (result.get("class_names") or {}).items()},
            train_seconds=seconds, time_source=source,
            runner_wall_seconds=record.get("runner_wall_seconds"), gpu_hours=record.get("gpu_hours"),
            gpus_used=record.get("gpus_used"), epochs_done=result.get("epochs_done"),
            num_epochs=result.get("num_epochs"), peak_gpu_memory_bytes=result.get("peak_gpu_memory_bytes"),
            environment=dict(record.get("environment") or {}), time_to_dice=checks,
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
        raise ValueError("no trainers to choose a reference from")
    if preferred is not None:
        if preferred not in trainers:
            raise ValueError(f"reference trainer {preferred!r} has no runs; trainers with runs: {list(trainers)}")
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
        for trainer in trainers:
            runs = done[trainer]
            if not runs:
                continue
            dices = [r.dice_mean for r in runs if r.dice_mean is not None]
            dice = _mean(dices)
            seconds = _mean([r.train_seconds for r in runs])
            memory = [r.peak_gpu_memory_bytes for r in runs if r.peak_gpu_memory_bytes is not None]
            table.append(TaskTrainerRow(
                task=task, trainer=trainer, n_runs=len(runs), dice_mean=dice,
                dice_std=statistics.stdev(dices) if len(dices) > 1 else None, train_seconds=seconds,
                relative_time=None if seconds is None or not ref_time else seconds / ref_time,
                relative_dice_pct=None if dice is None or not ref_dice else 100.0 * (dice - ref_dice) / ref_dice,
                gpu_hours=_mean([r.gpu_hours for r in runs]), epochs=_mean([r.epochs_done for r in runs]),
                peak_gpu_memory_gib=max(memory) / 2**30 if memory else None, is_reference=trainer == reference,
                dice_per_class=mean_dice_per_class(runs),
            ))
    return table


def wilcoxon_test(differences: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of paired differences; zero differences are dropped (Wilcoxon's rule).

    Never raises on degenerate input: no pairs or only zero differences give a note instead of a p-value error.
    """
    n = len(differences)
    if n == 0:
        return WilcoxonResult(0, None, None, "no task has results for both trainers")
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
        notes.append(f"{n - m} tied task(s) dropped")
    if m < WILCOXON_MIN_TASKS:
        noun = "difference" if m == 1 else "differences"
        notes.append(f"only {m} non-zero {noun}: the smallest possible two-sided p is {2.0 ** (1 - m):.3g}, "
                     f"so the test has little power")
    return WilcoxonResult(n, float(result.statistic), float(result.pvalue), "; ".join(notes))


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
    """(checks per run label, reference label, table) for the runs of ``task`` that logged Dice checks."""
    logged = [r for r in rows if r.task == task and r.time_to_dice]
    if not logged:
        return None
    counts = {t: sum(r.trainer == t for r in logged) for t in {r.trainer for r in logged}}
    runs = {run_label(r, counts[r.trainer] == 1): r.time_to_dice for r in logged}
    ref_rows = [r for r in logged if r.trainer == reference]
    reference_label = run_label(ref_rows[0] if ref_rows else logged[0],
                                counts[(ref_rows[0] if ref_rows else logged[0]).trainer] == 1)
    chosen = list(thresholds) if thresholds else default_thresholds(runs)
    return runs, reference_label, time_to_dice_table(runs, chosen, reference_label)


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
    headers = ["Trainer", "Runs", "Dice", *(["Dice per class"] if per_class else []), "Δ Dice (%)",
               f"Train time ({name})", "Rel. time", "GPU h", "Epochs", "Peak GPU mem (GiB)"]
    body = []
    for row in rows:
        dice = _fmt(row.dice_mean, 4) + (f" ± {row.dice_std:.4f}" if row.dice_std is not None else "")
        classes_text = ", ".join(f"{c} {_fmt(row.dice_per_class.get(c), 3)}" for c in classes)
        body.append([row.trainer + (" (ref)" if row.is_reference else ""), row.n_runs, dice,
                     *([classes_text] if per_class else []),
                     _signed(row.relative_dice_pct), _fmt(None if row.train_seconds is None else
                                                          row.train_seconds / per_unit, 2),
                     _fmt(row.relative_time, 3), _fmt(row.gpu_hours, 2), _fmt(row.epochs, 0),
                     _fmt(row.peak_gpu_memory_gib, 2)])
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
    headers = ["run_id", "task", "dataset", "configuration", "plans", "trainer", "fold", "seed", "status",
               "dice_mean", *[f"dice_class_{k}" for k in labels], "train_wall_seconds", "time_source",
               "runner_wall_seconds", "gpus_used", "gpu_hours", "epochs_done", "num_epochs",
               "peak_gpu_memory_bytes", "gpu_name", "device", "hostname", "nnunetv2_version", "torch_version",
               "package_version"]
    body = []
    for r in rows:
        env = r.environment
        body.append([r.run_id, r.task, r.dataset, r.configuration, r.plans, r.trainer, r.fold, r.seed, r.status,
                     r.dice_mean, *[r.dice_per_class.get(k) for k in labels], r.train_seconds, r.time_source,
                     r.runner_wall_seconds, r.gpus_used, r.gpu_hours, r.epochs_done, r.num_epochs,
                     r.peak_gpu_memory_bytes, env.get("gpu_name"), env.get("device"), env.get("hostname"),
                     env.get("nnunetv2_version"), env.get("torch_version"), env.get("package_version")])
    return csv_text(headers, body)


def tasks_csv(table: Sequence[TaskTrainerRow]) -> str:
    headers = ["task", "trainer", "is_reference", "n_runs", "dice_mean", "dice_std", "relative_dice_pct",
               "train_wall_seconds", "relative_time", "gpu_hours", "epochs", "peak_gpu_memory_gib"]
    return csv_text(headers, [[r.task, r.trainer, r.is_reference, r.n_runs, r.dice_mean, r.dice_std,
                               r.relative_dice_pct, r.train_seconds, r.relative_time, r.gpu_hours, r.epochs,
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


# ----------------------------------------------------------------------------------------------- writer

def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def write_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                 reference: str | None = None, thresholds: Sequence[float] | None = None) -> list[Path]:
    """Write report.md, report.csv (runs), tasks.csv, summary.csv, time_to_dice.csv and PNGs; returns the files."""
    from nnunet_progressive.benchmark.results import load_records

    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    spec_file = results_dir / "spec.json"
    spec = json.loads(spec_file.read_text()) if spec_file.is_file() else {}
    spec_trainers = [(t["name"] + (f" from {t['pretrained']}" if t.get("pretrained") else ""))
                     if isinstance(t, Mapping) else t for t in spec.get("trainers", [])]
    records = load_records(results_dir)
    rows = run_rows(records)
    done = [r for r in rows if r.status == "done"]
    trainers = trainer_order(done or rows, spec_trainers)
    if not trainers:
        raise ValueError(f"{results_dir / 'runs'} holds no run records yet; run `nnprog benchmark run SPEC` first")
    ref = choose_reference(trainers, reference or (spec.get("reference_trainer")
                                                   if spec.get("reference_trainer") in trainers else None))
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
          + (f"; not done: {len(not_done)} (listed at the end)" if not_done else "") + ".\n",
          f"Reference trainer: **{ref}**. Dice: nnU-Net's final validation, foreground mean, averaged over the "
          f"folds and seeds of a task (± standard deviation over runs). Δ Dice: relative change against the "
          f"reference in %. Rel. time: mean training time / the reference's. Training time source(s): "
          f"{', '.join(sources) or '-'} (run_summary / checkpoint_logging: sum of nnU-Net's epoch times; "
          f"runner: the nnUNetv2_train subprocess wall time). GPU h = training hours x GPUs per run.\n",
          "## Per task\n"]
    for task in _tasks(done):
        md += [f"### {task}\n", task_markdown(table, task, unit)]
    md += ["## Summary across tasks\n",
           f"Mean of the per-task values against {ref}; the Wilcoxon signed-rank test (two-sided) pairs the "
           f"per-task mean Dice of each trainer with the reference's.\n", summary_markdown(summaries)]

    ttd_csv_rows: list[list[Any]] = []
    ttd_md: list[str] = []
    for task in _tasks(done):
        found = task_time_to_dice(done, task, ref, thresholds)
        if found is None:
            continue
        runs, reference_label, ttd_rows = found
        png = f"time_to_dice_{_slug(task)}.png"
        plot_dice_vs_time(runs, out / png, [r.threshold for r in ttd_rows], reference_label, title=task)
        written.append(out / png)
        ttd_md += [f"### {task}\n", table_markdown(ttd_rows, reference_label), f"\n![Dice vs time]({png})\n"]
        ttd_csv_rows += [[task, row.threshold, name, row.seconds[name], row.ratio[name], reference_label]
                         for row in ttd_rows for name in row.seconds]
    if ttd_md:
        md += ["## Time to Dice\n", "Training time (s, Dice checks excluded) until the validation Dice first "
               "reached each threshold, and the ratio to the reference run.\n", *ttd_md]
        put("time_to_dice.csv", csv_text(["task", "threshold", "run", "train_wall_seconds", "ratio_to_reference",
                                          "reference"], ttd_csv_rows))

    plot_dice_vs_time_per_task(rows, trainers, out / "dice_vs_time.png")
    plot_relative(table, trainers, ref, out / "relative_time_dice.png")
    written += [out / "dice_vs_time.png", out / "relative_time_dice.png"]
    md += ["## Plots\n", "![Dice vs training time per task](dice_vs_time.png)\n",
           "![Relative training time and Dice per task](relative_time_dice.png)\n"]

    environments = {}
    for r in done:
        key = tuple(r.environment.get(k) for k in ("gpu_name", "device", "nnunetv2_version", "torch_version",
                                                     "package_version"))
        environments[key] = environments.get(key, 0) + 1
    md += ["## Environment\n", markdown_table(["GPU", "Device", "nnU-Net", "torch", "nnunet-progressive", "Runs"],
                                              [[*(v or "-" for v in k), n] for k, n in environments.items()])]
    if not_done:
        md += ["## Runs not done\n", markdown_table(["Run", "Status"], [[r.run_id, r.status] for r in not_done])]
    put("report.md", "\n".join(md))
    put("report.csv", runs_csv(rows))
    put("tasks.csv", tasks_csv(table))
    put("summary.csv", summary_csv(summaries, ref))
    return written
