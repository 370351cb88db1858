"""File names and record formats, defined once (importable without torch or nnU-Net).

A fold folder (``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>/fold_<f>``) of this
package's trainers holds, besides nnU-Net's own files:

- ``nnprog_run.json`` (:class:`RunIdentity`): what the run is: trainer, settings, plans; written when it starts;
- ``<checkpoint>.nnprog.json`` (:class:`CheckpointState`): the package's state at that checkpoint;
- ``run_summary.json`` (:class:`RunSummary`): time, epochs, memory, environment; written at the end;
- ``curriculum.json`` (:class:`Curriculum`) and ``pgps_schedule.png``: the PGPS trainers' stages and timings;
- ``time_to_dice.json`` (:class:`TimeToDice`): the Dice checks of the stop-at-Dice and PDL trainers.

Transfer learning writes, outside fold folders:

- ``<OUT>.pth`` of ``nnprog transfer adapt``: nnU-Net's checkpoint format (``network_weights``) plus the
  :class:`TransferRecord` under the key ``nnprog_transfer``, and the same record as ``<OUT>.pth.transfer.json``;
- ``nnprog_transfer_<PLANS>.json`` (:class:`TransferPreparation`) in the SOURCE dataset's preprocessed folder:
  what ``nnprog transfer prepare`` did, so a re-run can check it;
- the ``-o`` JSON of ``nnprog transfer sources`` (:class:`SourceScores`).

Records are pydantic models that keep unknown keys (newer or older package versions add fields);
:func:`read_record` validates a file against one and names the file in its error. Writers go through
:func:`write_record` (atomic: temporary file, then rename).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import atomic_write_json
from nnunet_progressive.core.validation import validate

# ------------------------------------------------------------------------------------------ file names
RUN_IDENTITY_JSON = "nnprog_run.json"
CHECKPOINT_STATE_SUFFIX = ".nnprog.json"
RUN_SUMMARY_JSON = "run_summary.json"
CURRICULUM_JSON = "curriculum.json"
CURRICULUM_PNG = "pgps_schedule.png"
TIME_TO_DICE_JSON = "time_to_dice.json"
VALIDATION_SUMMARY = os.path.join("validation", "summary.json")
CHECKPOINT_FINAL = "checkpoint_final.pth"
CHECKPOINT_LATEST = "checkpoint_latest.pth"
CHECKPOINT_BEST = "checkpoint_best.pth"
BENCHMARK_RUNS_DIR = "runs"
TRANSFER_CHECKPOINT_KEY = "nnprog_transfer"
TRANSFER_REPORT_SUFFIX = ".transfer.json"


def checkpoint_state_path(checkpoint_file: str | os.PathLike) -> Path:
    """Where a checkpoint's package state lives (nnU-Net's checkpoint format stays stock)."""
    return Path(str(checkpoint_file) + CHECKPOINT_STATE_SUFFIX)


def transfer_report_path(adapted_checkpoint: str | os.PathLike) -> Path:
    """The JSON report beside a checkpoint written by ``nnprog transfer adapt``."""
    return Path(str(adapted_checkpoint) + TRANSFER_REPORT_SUFFIX)


def transfer_preparation_file_name(plans: str) -> str:
    """What ``nnprog transfer prepare`` did, in the source dataset's preprocessed folder."""
    return f"nnprog_transfer_{plans}.json"


def ranking_file_name(configuration: str) -> str:
    """The PDL similarity ranking of a configuration, in ``nnUNet_preprocessed/DatasetXXX_Name/``."""
    return f"similarity_ranking_{configuration}.json"


# ----------------------------------------------------------------------------------------------- models

class Record(BaseModel):
    """Base of every record: unknown keys are kept, known ones are typed."""

    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


class DiceCheck(Record):
    """One validation Dice check during training."""

    epoch: int
    train_wall_seconds: float  # cumulative training wall time at the end of that epoch, checks excluded
    dice: float  # mean foreground Dice (NaN: no foreground anywhere)
    check_seconds: float = 0.0
    dice_per_class: list[float] = Field(default_factory=list)
    stage: str = "all training cases"


class TimeToDice(Record):
    """``time_to_dice.json``: every Dice check of a run, and whether and when the target was reached."""

    trainer: str | None = None
    target_dice: float | None = None
    check_every: int | None = None
    method: str | None = None
    checks: list[DiceCheck]
    reached: dict[str, Any] | None = None
    stopped_by: str | None = None  # "target" | "max_epochs" | None (still training)


class RunSummary(Record):
    """``run_summary.json``: what a benchmark compares (written when training ends)."""

    trainer: str
    package_version: str | None = None
    nnunetv2_version: str | None = None
    torch_version: str | None = None
    device: str | None = None
    gpu_name: str | None = None
    epochs_done: int
    num_epochs: int
    num_iterations_per_epoch: int
    train_wall_seconds: float
    train_iteration_seconds: float | None = None
    peak_gpu_memory_bytes: int | None = None
    settings: dict[str, Any] | None = None


class Curriculum(Record):
    """``curriculum.json``: a PGPS run's schedule and per-stage epochs, times and throughput."""

    trainer: str
    mode: str
    schedule: dict[str, Any]
    stages: list[dict[str, Any]] = Field(default_factory=list)
    epochs_done: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0


class TensorEntry(Record):
    """One target tensor of a transfer: where its values came from."""

    target: str
    source: str | None = None
    target_shape: list[int]
    source_shape: list[int] | None = None
    status: str  # loaded | adapted | fresh | head
    rule: str = ""


class TransferRecord(Record):
    """``nnprog transfer adapt``: a source checkpoint mapped onto a target network."""

    package_version: str | None = None
    created: str | None = None
    source_checkpoint: str
    source_channel_names: list[str] | None = None
    target_dataset: str
    target_configuration: str
    target_plans: str
    target_trainer: str
    target_channel_names: list[str] = Field(default_factory=list)
    channel_rule: str
    channel_matches: list[int | None] | None = None
    seed: int = 0
    counts: dict[str, int]
    mapped_share: float
    entries: list[TensorEntry]
    unused_source: list[str] = Field(default_factory=list)

    def statuses(self) -> dict[str, str]:
        return {e.target: e.status for e in self.entries}


class TransferPreparation(Record):
    """``nnprog transfer prepare``: the target's plans moved onto the source and the source preprocessed."""

    package_version: str | None = None
    source_dataset: str
    target_dataset: str
    target_plans: str  # the target's plans identifier (what was moved)
    source_plans: str  # the identifier of the plans written for the source
    configurations: list[str]
    target_plans_sha256: str  # of the target's plans file when they were moved
    normalization: list[dict[str, Any]] = Field(default_factory=list)  # per source channel: scheme and why
    steps: list[dict[str, Any]] = Field(default_factory=list)


class SourceScores(Record):
    """``nnprog transfer sources -o``: every candidate's components, combined score and the recommendation."""

    package_version: str | None = None
    target: dict[str, Any]
    weights: dict[str, float]
    candidates: list[dict[str, Any]]
    profiles: list[dict[str, Any]] = Field(default_factory=list)
    recommendation: str


T = TypeVar("T", bound=Record)


def read_record(path: str | os.PathLike, model: type[T], missing_ok: bool = False) -> T | None:
    """The record in ``path`` validated as ``model``; None if it does not exist and ``missing_ok``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ProgressiveConfigError(f"{path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ProgressiveConfigError(f"{path} is not valid JSON ({error}); it was damaged: delete it (or restore "
                                     f"it from a copy) and run again") from None
    return validate(model, data, str(path))


def write_record(path: str | os.PathLike, record: Record) -> None:
    """Write ``record`` to ``path`` atomically."""
    atomic_write_json(path, record.to_json())
