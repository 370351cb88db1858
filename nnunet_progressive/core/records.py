"""File names and record formats, defined once (importable without torch or nnU-Net).

A fold folder (``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>/fold_<f>``) of this
package's trainers holds, besides nnU-Net's own files:

- ``nnprog_run.json`` (:class:`RunIdentity`): what the run is: trainer, settings, plans, the pre-trained weights it
  started from; written when it starts;
- ``<checkpoint>.nnprog.json`` (:class:`CheckpointState`): the package's state at that checkpoint;
- ``run_summary.json`` (:class:`RunSummary`): time, epochs, memory, environment; written at the end;
- ``curriculum.json`` (:class:`Curriculum`) and ``pgps_schedule.png``: the PGPS trainers' stages and timings;
- ``time_to_dice.json`` (:class:`TimeToDice`): the Dice checks of the stop-at-Dice and PDL trainers.

A benchmark's results folder (``nnprog benchmark run``) holds ``spec.json``, one ``runs/<run_id>.json``
(:class:`BenchmarkRecord`) per run and ``prepared/<DatasetXXX_Name>.json`` (:class:`DatasetPreparation`).

Transfer learning writes, outside fold folders:

- ``<OUT>.pth`` of ``nnprog transfer adapt``: nnU-Net's checkpoint format (``network_weights``) plus the
  :class:`TransferRecord` under the key ``nnprog_transfer``, and the same record as ``<OUT>.pth.transfer.json``;
- ``nnprog_transfer_<PLANS>.json`` (:class:`TransferPreparation`) in the SOURCE dataset's preprocessed folder:
  what ``nnprog transfer prepare`` did, so a re-run can check it;
- the ``-o`` JSON of ``nnprog transfer sources`` (:class:`SourceScores`).

The PDL similarity ranking (``similarity_ranking_<data identifier>.json``, :class:`SimilarityRanking`) and its
pair cache (``<stem>.pairs.json``, :class:`PairCacheFile`) live in ``nnUNet_preprocessed/DatasetXXX_Name/``.

Records are pydantic models that keep unknown keys (newer or older package versions add fields), and they are the
only way the package reads and writes these files: :func:`read_record` validates a file against one and names the
file in its error; :func:`write_record` writes one (atomic: temporary file, then rename). Records whose layout may
change carry ``schema_version`` (:class:`VersionedRecord`): 0 for files written before it was recorded (they still
read), and a file of a newer layout is refused with the fix. nnU-Net's own JSON files (``dataset.json``,
``debug.json``, ``validation/summary.json``) are read with :func:`read_json_object`, which gives the same errors.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import atomic_write_text, file_sha256
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
BENCHMARK_SPEC_JSON = "spec.json"
BENCHMARK_PREPARED_DIR = "prepared"
TRANSFER_CHECKPOINT_KEY = "nnprog_transfer"
TRANSFER_REPORT_SUFFIX = ".transfer.json"


def checkpoint_state_path(checkpoint_file: str | os.PathLike) -> Path:
    """Where a checkpoint's package state lives (nnU-Net's checkpoint format stays stock)."""
    return Path(str(checkpoint_file) + CHECKPOINT_STATE_SUFFIX)


def ranking_file_name(data_identifier: str, fold: int | str) -> str:
    """The PDL similarity ranking of one fold's training cases of one preprocessed data folder, in
    ``nnUNet_preprocessed/DatasetXXX_Name/``.

    Named after the configuration's data identifier (``nnUNetPlans_3d_fullres``): the ranking is computed from the
    preprocessed images, which plans sharing a data identifier (nnU-Net's ResEnc presets, small plans) share; and
    after the fold (``_fold0``): it ranks that fold's training cases only. The all-cases file of versions before
    2026-12 (``similarity_ranking_<data identifier>.json``, validation cases included) is not read.
    """
    return f"similarity_ranking_{data_identifier}_fold{fold}.json"


def fingerprint(data: Any) -> str:
    """sha256 (hex) of ``data`` as canonical JSON (sorted keys): identifies e.g. a configuration's plans entry."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def transfer_report_path(adapted_checkpoint: str | os.PathLike) -> Path:
    """The JSON report beside a checkpoint written by ``nnprog transfer adapt``."""
    return Path(str(adapted_checkpoint) + TRANSFER_REPORT_SUFFIX)


def transfer_preparation_file_name(plans: str) -> str:
    """What ``nnprog transfer prepare`` did, in the source dataset's preprocessed folder."""
    return f"nnprog_transfer_{plans}.json"


# ----------------------------------------------------------------------------------------------- models

class Record(BaseModel):
    """Base of every record: unknown keys are kept, known ones are typed."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")  # a NaN Dice stays NaN, not null

    allow_nan: ClassVar[bool] = True  # False: a NaN or infinity is refused when written (ValueError)

    def to_json(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


class VersionedRecord(Record):
    """A record whose layout may change: ``schema_version`` is the layout a file was written with (0: written
    before versions were recorded); :func:`write_record` writes the current one, and a file of a newer layout is
    refused with the fix."""

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = 0

    @model_validator(mode="after")
    def _not_newer_than_this_version(self) -> VersionedRecord:
        if self.schema_version > self.SCHEMA_VERSION:
            raise ValueError(f"written by a newer version of nnunet-progressive (schema_version "
                             f"{self.schema_version}; this version reads up to {self.SCHEMA_VERSION}); upgrade "
                             f"nnunet-progressive (pip install -U nnunet-progressive)")
        return self


class PretrainedWeights(Record):
    """The ``-pretrained_weights`` file a run started from, as its run identity records it."""

    path: str  # absolute
    size: int  # bytes
    sha256: str

    def same_weights(self, other: PretrainedWeights | None) -> bool:
        return other is not None and other.sha256 == self.sha256


class RunIdentity(Record):
    """``nnprog_run.json``: what a run is, fixed when it starts; ``--c`` and ``--val`` continue with it."""

    run_id: str  # random, new for every start; checkpoint sidecars carry it
    trainer: str
    package_version: str
    settings: dict[str, Any]  # ProgressiveSettings.to_dict() of the run
    plans: str
    configuration: str
    fold: str
    plans_fingerprint: str  # fingerprint() of the configuration's plans entry
    created: str  # ISO 8601, local time
    # the -pretrained_weights file of the run's start (None: from scratch); run files of versions before it was
    # recorded lack the key (see ``records_pretrained_weights``)
    pretrained_weights: PretrainedWeights | None = None

    @property
    def records_pretrained_weights(self) -> bool:
        """False for a run file of an older version, which cannot say whether its run had pre-trained weights (and
        for one written from such a run's sidecar: the key stays out of the file)."""
        return "pretrained_weights" in self.model_fields_set

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if not self.records_pretrained_weights:
            data.pop("pretrained_weights", None)
        return data

    def differences(self, other: RunIdentity) -> dict[str, tuple[Any, Any]]:
        """What makes ``other`` another run: differing settings (by knob name), plans and pre-trained weights (by
        content, where both run files record them); name -> (self, other)."""
        found: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(self.settings) | set(other.settings)):
            mine, theirs = self.settings.get(key), other.settings.get(key)
            if mine != theirs:
                found["NNPROG_" + key.upper()] = (mine, theirs)
        if self.plans_fingerprint != other.plans_fingerprint:
            found[f"plans entry of {self.configuration} in {self.plans}.json"] = ("as planned then", "changed")
        if self.records_pretrained_weights and other.records_pretrained_weights:
            mine_w, theirs_w = self.pretrained_weights, other.pretrained_weights
            if (mine_w is None) != (theirs_w is None) or (mine_w is not None and not mine_w.same_weights(theirs_w)):
                found["-pretrained_weights"] = (mine_w.path if mine_w else None, theirs_w.path if theirs_w else None)
        return found


class DiceCheck(Record):
    """One validation Dice check during training."""

    epoch: int
    train_wall_seconds: float  # cumulative training wall time at the end of that epoch, checks excluded
    dice: float  # mean foreground Dice (NaN: no foreground anywhere)
    check_seconds: float = 0.0
    dice_per_class: list[float] = Field(default_factory=list)
    stage: str = "all training cases"


class FineTuningState(Record):
    """``FineTuningMixin``'s part of a checkpoint sidecar (key ``finetune``): what ``--c`` rebuilds the optimiser's
    parameter roles from before nnU-Net loads the checkpoint."""

    recipe: str
    pretrained_weights: str | None = None  # the -pretrained_weights file of the run's start
    parameter_statuses: dict[str, str] | None = None  # target parameter -> loaded | adapted | fresh | head
    schedule: dict[str, Any] = Field(default_factory=dict)


class CheckpointState(VersionedRecord):
    """``<checkpoint>.nnprog.json``: the package's state at one checkpoint, one typed part per mixin (a part is
    absent, i.e. its default, in trainers without that mixin and in sidecars of older versions)."""

    current_epoch: int  # as nnU-Net stores it: the next epoch to train
    run_id: str | None = None  # the RunIdentity the checkpoint belongs to (None: written by an older version)
    trainer: str | None = None
    package_version: str | None = None
    settings: dict[str, Any] | None = None  # the run's settings (runs of older versions have no run file)
    ended: bool = False  # written when training ended (all epochs, or a target reached)
    sha256: str | None = None  # of the checkpoint file as written (None: written by an older version)
    # RunLengthMixin (and its base AugmentationPlacementMixin): per epoch
    train_seconds: dict[str, float] = Field(default_factory=dict)  # seconds of the training iterations
    untimed_seconds: dict[str, float] = Field(default_factory=dict)  # seconds outside training (Dice checks)
    augmentation_seconds: dict[str, tuple[float, int]] = Field(default_factory=dict)  # [seconds, batches]
    # StagedTrainingLoaderMixin: epoch -> seconds spent rebuilding the training loader
    switch_seconds: dict[str, float] = Field(default_factory=dict)
    # ProgressivePatchMixin / RandomPatchSizeMixin: epoch -> Throughput fields (pgps/throughput.py)
    throughput: dict[str, dict[str, int | float | str]] = Field(default_factory=dict)
    # StopAtDiceMixin: the Dice checks so far
    dice_checks: list[DiceCheck] = Field(default_factory=list)
    # ProgressiveDataMixin: the run's Set 1 (None: not fixed yet)
    set1: list[str] | None = None
    # FineTuningMixin
    finetune: FineTuningState | None = None


def checkpoint_checksum_problem(checkpoint: str | os.PathLike, state: CheckpointState) -> str | None:
    """Why ``checkpoint``'s content is not what was written (its sha256 differs from the sidecar's); None if it
    is, or if the sidecar records no checksum (older versions)."""
    if state.sha256 is None:
        return None
    if file_sha256(checkpoint) == state.sha256:
        return None
    name = Path(checkpoint).name
    return (f"{name} does not match the sha256 in {checkpoint_state_path(name).name}: its content changed after "
            f"it was written (a disk, copy or transfer error)")


class SimilarityRanking(Record):
    """``similarity_ranking_<data identifier>.json``, the ranking ``nnprog rank`` writes (see
    :mod:`nnunet_progressive.nnunet.offline.pdl_ranking`). A PDL trainer reads ``case_ids``, ``case_list_fingerprint``,
    ``order`` and ``settings`` (what it was computed from: plans, configuration, data identifier, spacing, besides
    the comparison settings). No NaN is written: every score is a number."""

    allow_nan: ClassVar[bool] = False

    format: int = 1
    package_version: str | None = None
    case_ids: list[str]
    case_list_fingerprint: str
    mode: str | None = None
    reference: str | None = None
    registration: str | None = None
    region: str | None = None
    metrics: list[str] = Field(default_factory=list)
    scores: dict[str, dict[str, float]] = Field(default_factory=dict)  # metric -> case -> dissimilarity
    combined_rank: dict[str, float] = Field(default_factory=dict)
    order: list[str]
    failures: list[dict[str, Any]] = Field(default_factory=list)  # pairs compared unregistered, and why
    num_pairs: int | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    seconds: float | None = None
    orders: dict[str, list[str]] = Field(default_factory=dict)  # most dissimilar first per ranking metric


class CachedPair(Record):
    """One compared pair of the ranking's pair cache."""

    fixed: str
    moving: str
    values: dict[str, float]
    registration_ok: bool
    status: str = ""  # registered | partial | start | failed | off (empty: written before statuses, format 1)
    stage_kept: str = ""
    discarded: list[str] = Field(default_factory=list)
    message: str = ""
    seconds: float = 0.0


class PairCacheFile(Record):
    """``<ranking stem>.pairs.json``: the pair results of one comparison setting (``settings_key``), so that an
    interrupted or repeated ``nnprog rank`` compares only the missing pairs."""

    allow_nan: ClassVar[bool] = False

    format: int
    settings_key: str
    settings: dict[str, Any] = Field(default_factory=dict)
    pairs: list[CachedPair] = Field(default_factory=list)


class TimeToDice(Record):
    """``time_to_dice.json``: every Dice check of a run, and whether and when the target was reached."""

    trainer: str | None = None
    target_dice: float | None = None
    check_every: int | None = None
    method: str | None = None
    checks: list[DiceCheck]
    reached: dict[str, Any] | None = None
    stopped_by: str | None = None  # "target" | "max_epochs" | None (still training)


class AugmentationCost(Record):
    """Where a run's training augmentation ran (``NNPROG_AUGMENT_ON``) and what it cost per batch."""

    on: Literal["workers", "device"]
    device: str | None = None  # the training device it ran on (``device``)
    seconds_per_batch: float | None = None  # see ``measured``; None where nothing measured it
    batches: int = 0  # the batches the figure is over
    measured: str = ""  # what the seconds are: the training process's augmentation, or the loader workers' batch


class RunSummary(VersionedRecord):
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
    augmentation: AugmentationCost | None = None  # absent in runs of older versions (their workers augmented)
    time_budget_decisions: list[dict[str, Any]] = Field(default_factory=list)  # NNPROG_TIME_BUDGET: each length set


class Curriculum(VersionedRecord):
    """``curriculum.json``: a PGPS run's schedule and per-stage epochs, times and throughput."""

    package_version: str | None = None
    trainer: str
    mode: str  # a PGPS mode, or rpss
    settings: dict[str, Any] | None = None
    num_iterations_per_epoch: int | None = None
    schedule: dict[str, Any]
    stages: list[dict[str, Any]] = Field(default_factory=list)
    epochs_done: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    switch_seconds: dict[str, float] = Field(default_factory=dict)  # epoch -> seconds rebuilding the loader
    total_switch_seconds: float | None = None
    throughput: dict[str, Any] | None = None  # RPSS: the whole run's throughput summary
    augmentation: AugmentationCost | None = None  # absent in runs of older versions (their workers augmented)


RunStatus = Literal["new", "running", "done", "failed", "interrupted"]


class Attempt(Record):
    """One ``nnUNetv2_train`` call of a benchmark run."""

    mode: Literal["new", "continue", "validate"]
    command: list[str]
    started_at: str
    ended_at: str | None = None
    wall_seconds: float | None = None
    outcome: Literal["ok", "failed", "interrupted"] | None = None
    host: str | None = None
    pid: int | None = None
    gpu: int | None = None
    slurm_job_id: str | None = None
    energy_joules: float | None = None  # GPU energy while nnUNetv2_train ran (NVML); None where not reported


class RunResult(Record):
    """What a finished run produced, read from its fold folder (None where nothing was written)."""

    fold_folder: str | None = None
    dice_mean: float | None = None
    dice_per_class: dict[str, float] = Field(default_factory=dict)  # label value -> Dice
    class_names: dict[str, str] = Field(default_factory=dict)  # label value -> name in dataset.json
    train_wall_seconds: float | None = None  # sum of nnU-Net's epoch times
    train_wall_source: str | None = None  # run_summary | checkpoint_logging | None
    train_iteration_seconds: float | None = None  # the training iterations alone (run_summary.json)
    epochs_done: int | None = None
    num_epochs: int | None = None
    num_iterations_per_epoch: int | None = None
    peak_gpu_memory_bytes: int | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] | None = None
    curriculum: dict[str, Any] | None = None  # curriculum.json of a PGPS run
    ideal_time_ratio: float | None = None  # the PGPS schedule's voxels processed / constant patch's
    switch_seconds: float | None = None  # PGPS: time spent rebuilding loaders at stage switches
    time_to_dice: dict[str, Any] | None = None  # time_to_dice.json (validated when read)


class BenchmarkRecord(Record):
    """``runs/<run_id>.json``: one benchmark run, its attempts and, once done, its result."""

    run_id: str
    dataset: str
    dataset_id: int | None = None
    configuration: str
    plans: str
    trainer: str
    label: str | None = None  # the trainer entry's name in the report (default: the trainer)
    fold: int | str
    seed: int
    knobs: dict[str, str] = Field(default_factory=dict)  # the environment the run trains with
    settings_id: str | None = None  # hash of the run's settings: part of run_id and of its results folder
    settings: dict[str, Any] = Field(default_factory=dict)  # what settings_id is the hash of
    status: RunStatus = "new"
    fold_folder: str | None = None
    log_file: str | None = None
    error: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    runner_wall_seconds: float | None = None  # sum of the attempts' subprocess wall time
    gpus_used: int | None = None
    gpu_hours: float | None = None  # training wall hours x GPUs one run occupies (None on CPU)
    energy_joules: float | None = None  # sum of the attempts' GPU energy; None unless every attempt reported it
    environment: dict[str, Any] = Field(default_factory=dict)
    result: RunResult | None = None
    updated_at: str | None = None

    @model_validator(mode="after")
    def _label_defaults_to_the_trainer(self) -> BenchmarkRecord:
        if not self.label:
            self.label = self.trainer
        return self


class DatasetPreparation(Record):
    """``prepared/<DatasetXXX_Name>.json``: what ``nnprog benchmark run`` did to a dataset before training."""

    dataset: str
    generated_seconds: float | None = None  # synthetic preset written
    plan_seconds: float | None = None  # nnUNetv2_plan_and_preprocess / nnUNetv2_preprocess
    rank_seconds: float | None = None  # nnprog rank (the PDL trainers' similarity ranking)
    ranking_files: list[str] = Field(default_factory=list)


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
    # issue 23/24: counts are of tensors; the state-dict names per status beside them; the head rows kept
    state_dict_names: dict[str, int] | None = None
    head_rows: dict[str, Any] | None = None  # kept {target label: source label}, fresh [labels], source_channels

    def kept_head_labels(self) -> dict[str, str]:
        return dict((self.head_rows or {}).get("kept") or {})

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
    notes: list[str] = Field(default_factory=list)  # e.g. a component left out for carrying no signal


T = TypeVar("T", bound=Record)


def read_record(path: str | os.PathLike, model: type[T], missing_ok: bool = False) -> T | None:
    """The record in ``path`` validated as ``model``; None if it does not exist and ``missing_ok``."""
    data = read_json_object(path, missing_ok)
    return None if data is None else validate(model, data, str(path))


def read_json_object(path: str | os.PathLike, missing_ok: bool = False) -> dict[str, Any] | None:
    """The JSON object in ``path`` (nnU-Net's own files; the package's go through :func:`read_record`); None if
    it does not exist and ``missing_ok``; a damaged file is an error naming it and the fix."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ProgressiveConfigError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ProgressiveConfigError(f"{path} is not valid JSON ({error}); it was damaged: delete it (or restore "
                                     f"it from a copy) and run again") from None
    except OSError as error:
        raise ProgressiveConfigError(f"{path} cannot be read ({error.strerror or error})") from None
    if not isinstance(data, dict):
        raise ProgressiveConfigError(f"{path}: expected a JSON object, found {type(data).__name__}; it was damaged: "
                                     f"delete it (or restore it from a copy) and run again")
    return data


def write_record(path: str | os.PathLike, record: Record) -> None:
    """Write ``record`` to ``path`` atomically (indented JSON; a :class:`VersionedRecord` with the current
    ``schema_version``). A record that refuses NaN (``allow_nan`` False) raises ValueError for one, and the file
    stays as it was."""
    data = record.to_json()
    if isinstance(record, VersionedRecord):
        data["schema_version"] = type(record).SCHEMA_VERSION
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=type(record).allow_nan) + "\n")


# --- measured step times of a PGPS schedule (issue 25: nnprog profile, NNPROG_MEASURED_SCHEDULE) -----------------
MEASURED_SCHEDULE_JSON = "pgps_measured_schedule.json"  # in the fold folder: the stages a run chose, and why


def profile_file_name(trainer: str, plans: str, configuration: str) -> str:
    """``nnprog profile``'s record in ``nnUNet_preprocessed/DatasetXXX_Name/`` (the newest profile of that trainer,
    plans and configuration; it says which device, versions and stages it timed)."""
    return f"nnprog_profile__{trainer}__{plans}__{configuration}.json"


class StageProfile(Record):
    """Measured seconds per training iteration of one PGPS stage."""

    index: int
    patch_size: list[int]
    batch_size: int
    network_seconds: float  # the step alone, one batch used again, the loader stopped
    network_iterations: int
    loader_seconds: float | None = None  # the step with the stage's loader running (None: not timed)
    loader_iterations: int = 0


class StepProfile(Record):
    """A profile of a PGPS schedule's training steps on one device (``nnprog profile`` or a run's own start)."""

    package_version: str
    nnunetv2_version: str
    torch_version: str
    device: str  # cpu, cuda, mps
    device_name: str  # the GPU's name, or the CPU's model and core count
    compile: bool
    mixed_precision: bool
    loader_workers: int | None = None  # nnUNet_n_proc_DA of the with-loader timings (None: not timed)
    trainer: str
    dataset: str
    plans: str
    configuration: str
    plans_fingerprint: str
    created: str  # ISO 8601, local time
    seconds: float  # the profile's own wall time
    stages: list[StageProfile]

    def mismatch(self, device: str, device_name: str, torch_version: str, compile: bool,
                 stages: list[tuple[list[int], int]], plans_fingerprint: str) -> str | None:
        """Why this profile does not describe a run with these properties (None if it does)."""
        checks = (("device", self.device, device), ("device name", self.device_name, device_name),
                  ("torch version", self.torch_version, torch_version), ("torch.compile", self.compile, compile),
                  ("plans entry", self.plans_fingerprint, plans_fingerprint),
                  ("stages (patch, batch)", [(list(s.patch_size), s.batch_size) for s in self.stages],
                   [(list(p), b) for p, b in stages]))
        differing = [f"{name}: profile {mine!r}, run {theirs!r}" if name not in ("plans entry",) else
                     f"{name} changed" for name, mine, theirs in checks if mine != theirs]
        return "; ".join(differing) or None


class MeasuredScheduleRecord(Record):
    """``pgps_measured_schedule.json``: the stages a run with NNPROG_MEASURED_SCHEDULE=on trains, fixed when it
    starts; ``--c`` continues with them whatever the profile file says later."""

    run_id: str
    min_step_saving: float
    kept_stages: list[int]  # indices into the voxel schedule's stages
    source: str  # the profile file it came from, or the run's own profile (made at its start)
    profile: StepProfile
    predicted_time_ratio: dict[str, float | None]  # the measured schedule's (network_only, with_loader, voxels)
    voxel_schedule_time_ratio: dict[str, float | None]  # the voxel schedule's, from the same step times
