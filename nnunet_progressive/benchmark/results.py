"""What one finished run produced, read from its fold folder, and the per-run records of a benchmark.

A fold folder (``nnUNet_results/.../<trainer>__<plans>__<configuration>/fold_<f>``) may hold:

- ``run_summary.json``: written by this package's trainers at the end of training (time, epochs, memory,
  environment);
- ``validation/summary.json``: nnU-Net's final validation (``foreground_mean.Dice``, ``mean[label].Dice``);
- ``curriculum.json``: the PGPS trainers' schedule and per-stage times;
- ``time_to_dice.json``: the Dice checks of the ``*_StopAtDice`` and PDL trainers;
- ``checkpoint_final.pth`` and ``debug.json``: nnU-Net's own; read for plain nnU-Net trainers that write no
  run_summary.json (epoch timestamps of the checkpoint's log, epochs and device of debug.json).

Records live in ``<results_dir>/runs/<run_id>.json`` (:class:`~nnunet_progressive.core.records.BenchmarkRecord`,
written by :mod:`nnunet_progressive.benchmark.run`); they are read back typed, and a damaged one is an error that
names its file.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import (
    BENCHMARK_PREPARED_DIR,
    CURRICULUM_JSON,
    RUN_SUMMARY_JSON,
    TIME_TO_DICE_JSON,
    VALIDATION_SUMMARY,
    BenchmarkRecord,
    Curriculum,
    DatasetPreparation,
    RunResult,
    RunSummary,
    TimeToDice,
    read_json_object,
)
from nnunet_progressive.core.records import BENCHMARK_RUNS_DIR as RUNS_DIR
from nnunet_progressive.core.records import read_record as read_typed_record
from nnunet_progressive.core.records import write_record as write_typed_record
from nnunet_progressive.stopping.time_to_dice import validate_time_to_dice

ENVIRONMENT_KEYS = ("trainer", "package_version", "nnunetv2_version", "torch_version", "device", "gpu_name")


def validation_dice(summary: Mapping[str, Any]) -> tuple[float | None, dict[str, float]]:
    """(foreground mean Dice, Dice per label key) from nnU-Net's ``validation/summary.json``."""
    mean = summary.get("foreground_mean", {}).get("Dice")
    per_class = {str(k): float(v["Dice"]) for k, v in summary.get("mean", {}).items()
                 if isinstance(v, Mapping) and v.get("Dice") is not None}
    return (None if mean is None else float(mean)), per_class


def per_case_dice(summary: Mapping[str, Any]) -> dict[str, float]:
    """Case (its reference file's name) -> mean Dice over its labels, from ``metric_per_case`` of nnU-Net's
    ``validation/summary.json``; a label's NaN (empty in reference and prediction) is left out of the mean, and
    a case with no Dice at all is left out."""
    dice = {}
    for entry in summary.get("metric_per_case") or []:
        reference = entry.get("reference_file")
        values = [float(m["Dice"]) for m in (entry.get("metrics") or {}).values()
                  if isinstance(m, Mapping) and m.get("Dice") is not None and not math.isnan(float(m["Dice"]))]
        if reference and values:
            dice[Path(reference).name] = sum(values) / len(values)
    return dice


def read_per_case_dice(fold_folder: str | os.PathLike) -> dict[str, float] | None:
    """:func:`per_case_dice` of a fold folder's validation (None if it has no ``validation/summary.json``)."""
    summary = read_json_object(Path(fold_folder) / VALIDATION_SUMMARY, missing_ok=True)
    return None if summary is None else per_case_dice(summary)


def logged_epoch_times(checkpoint_file: str | os.PathLike) -> tuple[float, int] | None:
    """(training wall seconds, epochs) from the epoch timestamps nnU-Net logs in a checkpoint; None if absent."""
    import torch

    try:
        checkpoint = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    logging = checkpoint.get("logging", {})
    starts, ends = logging.get("epoch_start_timestamps", []), logging.get("epoch_end_timestamps", [])
    epochs = min(len(starts), len(ends))
    if epochs == 0:
        return None
    return float(sum(e - s for s, e in zip(starts[:epochs], ends[:epochs]))), epochs


def load_time_to_dice(fold_folder: str | os.PathLike) -> dict[str, Any]:
    """The validated ``time_to_dice.json`` of a fold folder; a clear error if it is missing."""
    path = Path(fold_folder) / TIME_TO_DICE_JSON
    data = _time_to_dice(path)
    if data is None:
        raise ProgressiveConfigError(
            f"{path} does not exist. It is written by the trainers that check the validation Dice during "
            f"training: the variants whose names end in `_StopAtDice` (e.g. nnUNetTrainer_StopAtDice) and the "
            f"Progressive DL trainers (nnUNetTrainer_PDL*). "
            f"Train with one of those (expected a fold folder such as "
            f"nnUNet_results/Dataset.../<trainer>__<plans>__<configuration>/fold_0)"
        )
    return data


def _time_to_dice(path: Path) -> dict[str, Any] | None:
    """``time_to_dice.json`` read as its record and checked for what the comparison reads; None if absent."""
    record = read_typed_record(path, TimeToDice, missing_ok=True)
    return None if record is None else validate_time_to_dice(record.to_json(), str(path))


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def collect_run(fold_folder: str | os.PathLike) -> RunResult:
    """Everything a report compares, read from a fold folder (fields are None where nothing was written)."""
    folder = Path(fold_folder)
    run_summary = read_typed_record(folder / RUN_SUMMARY_JSON, RunSummary, missing_ok=True)
    summary = {} if run_summary is None else run_summary.to_json()
    debug = read_json_object(folder / "debug.json", missing_ok=True) or {}  # nnU-Net's own files from here
    validation = read_json_object(folder / VALIDATION_SUMMARY, missing_ok=True)
    dice_mean, dice_per_class = validation_dice(validation) if validation else (None, {})
    dataset_json = read_json_object(folder.parent / "dataset.json", missing_ok=True) or {}
    class_names = {str(v): k for k, v in dataset_json.get("labels", {}).items() if isinstance(v, int) and v > 0}

    train_seconds, source, epochs_done = summary.get("train_wall_seconds"), None, summary.get("epochs_done")
    if train_seconds is not None:
        source = "run_summary"
    else:
        logged = logged_epoch_times(folder / "checkpoint_final.pth")
        if logged is None:
            logged = logged_epoch_times(folder / "checkpoint_latest.pth")
        if logged is not None:
            train_seconds, epochs_done = logged
            source = "checkpoint_logging"

    environment = {key: summary.get(key) for key in ENVIRONMENT_KEYS}
    if not summary:  # plain nnU-Net trainer: what its debug.json says
        environment.update(device=debug.get("device"), torch_version=debug.get("torch_version"),
                           gpu_name=debug.get("gpu_name"))
    curriculum_record = read_typed_record(folder / CURRICULUM_JSON, Curriculum, missing_ok=True)
    curriculum = None if curriculum_record is None else curriculum_record.to_json()
    schedule = (curriculum or {}).get("schedule") or {}
    time_to_dice = _time_to_dice(folder / TIME_TO_DICE_JSON)
    iteration_seconds = summary.get("train_iteration_seconds")
    return RunResult(
        fold_folder=str(folder),
        dice_mean=dice_mean,
        dice_per_class=dice_per_class,
        class_names=class_names,
        train_wall_seconds=None if train_seconds is None else float(train_seconds),
        train_wall_source=source,
        train_iteration_seconds=None if iteration_seconds is None else float(iteration_seconds),
        epochs_done=_int_or_none(epochs_done),
        num_epochs=_int_or_none(summary.get("num_epochs", debug.get("num_epochs"))),
        num_iterations_per_epoch=_int_or_none(
            summary.get("num_iterations_per_epoch", debug.get("num_iterations_per_epoch"))),
        peak_gpu_memory_bytes=_int_or_none(summary.get("peak_gpu_memory_bytes")),
        environment=environment,
        settings=summary.get("settings"),
        curriculum=curriculum,
        ideal_time_ratio=schedule.get("relative_compute"),
        switch_seconds=None if curriculum is None else curriculum.get("total_switch_seconds"),
        time_to_dice=time_to_dice,
    )


# ----------------------------------------------------------------------------------------------- records

def record_path(results_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(results_dir) / RUNS_DIR / f"{run_id}.json"


DAMAGED_RECORD_FIX = ("a run record is damaged or not one: delete the file; `nnprog benchmark run SPEC` writes it "
                      "again from the run's fold folder (a finished run is not trained again)")


def _run_record(path: Path, missing_ok: bool = False) -> BenchmarkRecord | None:
    try:
        return read_typed_record(path, BenchmarkRecord, missing_ok=missing_ok)
    except ProgressiveConfigError as error:
        message = str(error)
        fixed = message if "delete it" in message else f"{message}\n{DAMAGED_RECORD_FIX}"
        raise ProgressiveConfigError(fixed) from None


def read_record(results_dir: str | os.PathLike, run_id: str) -> BenchmarkRecord | None:
    """The record of ``run_id`` (None if there is none yet); a damaged record is an error naming its file."""
    return _run_record(record_path(results_dir, run_id), missing_ok=True)


def write_record(results_dir: str | os.PathLike, record: BenchmarkRecord) -> None:
    write_typed_record(record_path(results_dir, record.run_id), record)


def load_records(results_dir: str | os.PathLike) -> list[BenchmarkRecord]:
    """All records under ``<results_dir>/runs`` (sorted by run id); a damaged one is an error naming its file."""
    folder = Path(results_dir) / RUNS_DIR
    if not folder.is_dir():
        raise ProgressiveConfigError(
            f"{folder} does not exist: expected the results_dir of a benchmark (the folder `nnprog benchmark "
            f"run` writes runs/<run_id>.json into)"
        )
    return [_run_record(p) for p in sorted(folder.glob("*.json"))]


def preparation_path(results_dir: str | os.PathLike, dataset: str) -> Path:
    return Path(results_dir) / BENCHMARK_PREPARED_DIR / f"{dataset}.json"


def load_preparations(results_dir: str | os.PathLike) -> list[DatasetPreparation]:
    """The ``prepared/*.json`` records of a results folder (what preparing each dataset took)."""
    folder = Path(results_dir) / BENCHMARK_PREPARED_DIR
    return [read_typed_record(p, DatasetPreparation) for p in sorted(folder.glob("*.json"))]
