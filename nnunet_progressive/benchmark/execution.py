"""One benchmark run brought to ``done``: what every run shares (:class:`RunContext`), the state of its fold folder
(:func:`run_status`), the pre-trained weights a new fine-tuning run starts from, and :func:`execute_run`, which trains,
resumes or validates it with nnUNetv2_train and keeps its record.

Used by :mod:`.run` (every run of a spec, locally or on SLURM) and :mod:`.pretraining` (the source trainings); it
imports neither.
"""
from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nnunet_progressive.benchmark.energy import (
    EnergyReader,
    energy_joules,
    read_nvml_energy,
    run_gpus,
    total_energy_joules,
)
from nnunet_progressive.benchmark.progress import EpochBar, expected_epochs
from nnunet_progressive.benchmark.results import (
    VALIDATION_SUMMARY,
    collect_run,
    read_record,
    write_record,
)
from nnunet_progressive.benchmark.spec import BenchmarkRun, BenchmarkSpec, DatasetSpec
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import (
    RUN_IDENTITY_JSON,
    Attempt,
    BenchmarkRecord,
)
from nnunet_progressive.nnunet.orchestration.runner import (
    NnunetFolders,
    TrainingRun,
    train,
)

PRETRAINED_DIR = "pretrained"


def pretrained_weights_path(results_dir: str | Path, label: str, dataset: str, configuration: str, plans: str) -> Path:
    """The adapted checkpoint a fine-tuning run of ``label`` on (dataset, configuration, plans) starts from."""
    return Path(results_dir) / PRETRAINED_DIR / f"{label}__{dataset}__{configuration}__{plans}.pth"


def with_pretrained_weights(run: BenchmarkRun, results_dir: Path, extra: tuple[str, ...]) -> tuple[str, ...]:
    """``extra`` plus ``-pretrained_weights FILE`` for a new run of a pretraining label (a clear error if missing)."""
    if run.pretrained is None:
        return extra
    weights = pretrained_weights_path(results_dir, run.pretrained, run.dataset, run.configuration, run.plans)
    if not weights.is_file():
        raise ProgressiveConfigError(f"{weights} is missing: the pre-training of {run.pretrained!r} has not run; "
                                     f"`nnprog benchmark run SPEC` runs it before the trainers")
    return (*extra, "-pretrained_weights", str(weights))


STATUS_NEW, STATUS_INTERRUPTED, STATUS_TRAINED, STATUS_DONE = "new", "interrupted", "trained", "done"


MODE_FOR_STATUS = {STATUS_NEW: ("new", ()), STATUS_INTERRUPTED: ("continue", ("--c",)),
                   STATUS_TRAINED: ("validate", ("--val",))}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_status(fold_folder: str | os.PathLike, validates: bool = True) -> str:
    """``done``, ``trained``, ``interrupted`` or ``new`` from the files nnU-Net leaves in a fold folder
    (``validates`` False: a run whose final validation is off is done at ``checkpoint_final.pth``)."""
    folder = Path(fold_folder)
    if (folder / "checkpoint_final.pth").is_file():
        return STATUS_DONE if not validates or (folder / VALIDATION_SUMMARY).is_file() else STATUS_TRAINED
    if (folder / "checkpoint_latest.pth").is_file():
        return STATUS_INTERRUPTED
    return STATUS_NEW


@dataclass(frozen=True)
class RunContext:
    """What every run of a benchmark shares (picklable: it travels to SLURM jobs)."""

    folders: NnunetFolders  # nnUNet_results here is the root; a run trains into <root>/settings-<id>/seed_<s>
    results_dir: Path
    device: str = "cuda"
    gpus_per_run: int = 1
    timeout_seconds: float = math.inf
    epoch_bars: bool = False  # a tqdm bar of epochs per training (local, sequential, interactive)

    def run_folders(self, run: BenchmarkRun) -> NnunetFolders:
        """nnU-Net's folders for ``run``: its own results folder per settings and repeat."""
        results = self.folders.results / run.settings_folder / f"seed_{run.seed}"
        return NnunetFolders(self.folders.raw, self.folders.preprocessed, results)

    def training_run(self, run: BenchmarkRun, gpu: int | None = None) -> TrainingRun:
        knobs = dict(run.knobs)
        if gpu is not None:
            knobs["CUDA_VISIBLE_DEVICES"] = str(gpu)
        return TrainingRun(str(run.dataset_id), run.configuration, run.fold, run.trainer, run.plans, self.device,
                           knobs)

    def fold_folder(self, run: BenchmarkRun) -> Path:
        return self.training_run(run).output_folder(self.run_folders(run), run.dataset)

    def log_file(self, run: BenchmarkRun) -> Path:
        return self.results_dir / "logs" / f"{run.run_id}.log"


def context_for(spec: BenchmarkSpec, folders: NnunetFolders | None = None, epoch_bars: bool = False) -> RunContext:
    hours = spec.executor.run_timeout_hours
    return RunContext(folders or spec.folders(), spec.results_dir, spec.executor.device, spec.executor.gpus_per_run,
                      math.inf if hours is None else hours * 3600.0, epoch_bars)


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _gpu_name(gpu: int | str | None) -> str | None:
    """Name of a GPU by nvidia-smi index or UUID (default: the first visible one); None if unknown."""
    if gpu is None:
        gpu = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", str(gpu)],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    name = result.stdout.strip().splitlines()
    return name[0] if result.returncode == 0 and name else None


def runner_environment(device: str, gpu: int | None = None) -> dict[str, Any]:
    """Host, versions and GPU of the process that runs nnUNetv2_train."""
    from nnunet_progressive import __version__

    return {
        "hostname": socket.gethostname(),
        "python_version": platform.python_version(),
        "package_version": __version__,
        "nnunetv2_version": _package_version("nnunetv2"),
        "torch_version": _package_version("torch"),
        "device": device,
        "gpu_name": _gpu_name(gpu) if device == "cuda" else None,
        "cuda_visible_devices": str(gpu) if gpu is not None else os.environ.get("CUDA_VISIBLE_DEVICES"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def _refreshed_record(run: BenchmarkRun, context: RunContext) -> BenchmarkRecord:
    """The stored record of ``run`` (or a new one), with what the current spec says about the run."""
    record = read_record(context.results_dir, run.run_id) or BenchmarkRecord(
        run_id=run.run_id, dataset=run.dataset, configuration=run.configuration, plans=run.plans,
        trainer=run.trainer, fold=run.fold, seed=run.seed, gpus_used=context.gpus_per_run)
    for key, value in run.to_dict().items():
        setattr(record, key, value)
    record.fold_folder = str(context.fold_folder(run))
    record.log_file = str(context.log_file(run))
    return record


def _save(context: RunContext, record: BenchmarkRecord) -> BenchmarkRecord:
    record.updated_at = _now()
    write_record(context.results_dir, record)
    return record


def _runner_seconds(record: BenchmarkRecord) -> float | None:
    walls = [a.wall_seconds for a in record.attempts if a.wall_seconds is not None]
    return float(sum(walls)) if walls else None


def _finish(record: BenchmarkRecord, context: RunContext) -> BenchmarkRecord:
    """Mark done: read the fold folder, sum the runner's wall time, derive GPU hours."""
    result = collect_run(record.fold_folder)
    record.runner_wall_seconds = _runner_seconds(record)
    device = result.environment.get("device") or context.device
    gpus = context.gpus_per_run if str(device).startswith("cuda") else 0
    seconds = result.train_wall_seconds if result.train_wall_seconds is not None else record.runner_wall_seconds
    record.status, record.error, record.result, record.gpus_used = STATUS_DONE, None, result, gpus
    record.gpu_hours = None if not gpus or seconds is None else seconds / 3600.0 * gpus
    record.environment = {**record.environment, **{k: v for k, v in result.environment.items() if v is not None}}
    return _save(context, record)


def _active_elsewhere(record: BenchmarkRecord) -> str | None:
    """Why another live process on this host is training the run right now (None if none is)."""
    if record.status != "running" or not record.attempts:
        return None
    last = record.attempts[-1]
    if last.host != socket.gethostname() or not last.pid or last.pid == os.getpid():
        return None
    if last.slurm_job_id is not None and last.slurm_job_id == os.environ.get("SLURM_JOB_ID"):
        return None  # this job, requeued
    try:
        os.kill(last.pid, 0)
    except OSError:
        return None
    cmdline = Path(f"/proc/{last.pid}/cmdline")
    if cmdline.is_file() and not any(word in cmdline.read_bytes() for word in (b"nnprog", b"python")):
        return None  # the pid was reused by an unrelated program
    return f"already running in process {last.pid} on {last.host}"


def _watcher(run: BenchmarkRun, context: RunContext, stop: threading.Event | None
             ) -> tuple[Callable[[str], bool] | None, EpochBar | None]:
    """What ``runner.train`` polls: the epoch bar (if shown) and the stop event (if any)."""
    bar = None
    if context.epoch_bars:
        log = context.log_file(run)
        start = log.stat().st_size if log.is_file() else 0
        from nnunet_progressive.nnunet.orchestration.discovery import trainer_default_settings

        defaults = trainer_default_settings(run.trainer)  # the catalogue's, without torch, for the package's
        bar = EpochBar(f"{run.label} fold {run.fold}", expected_epochs(defaults, run.knobs), start)
    if bar is None and stop is None:
        return None, None

    def watch(log_text: str) -> bool:
        if bar is not None:
            bar.look(log_text)
        return stop is not None and stop.is_set()

    return watch, bar


def execute_run(run: BenchmarkRun, context: RunContext, gpu: int | None = None, force_continue: bool = False,
                stop: threading.Event | None = None, energy_reader: EnergyReader | None = None
                ) -> BenchmarkRecord:
    """Bring one run to ``done`` (train, resume or validate as its fold folder requires); returns its record.

    The GPU's energy counter is read (``energy_reader``, NVML) when nnUNetv2_train starts and ends: each attempt's
    ``energy_joules``, and their sum in the record (None on CPU or where the device does not report it;
    default reader: :func:`~nnunet_progressive.benchmark.energy.read_nvml_energy`).

    A failure is recorded (status ``failed``, the log's tail in ``error``) and returned, not raised; an
    interruption (Ctrl-C, SLURM's preemption signal, ``stop`` being set) is recorded as ``interrupted``.
    """
    record = _refreshed_record(run, context)
    status = run_status(record.fold_folder, run.validates)
    if status == STATUS_DONE:
        if record.status != STATUS_DONE or record.result is None:
            return _finish(record, context)
        return record
    busy = _active_elsewhere(record)
    if busy:
        return record.model_copy(update={"skipped_because": busy})
    mode, extra = MODE_FOR_STATUS[status]
    if force_continue and status == STATUS_NEW and (Path(record.fold_folder) / RUN_IDENTITY_JSON).is_file():
        # a requeued SLURM job whose run had started: --c continues it with its recorded settings and weights; one
        # that died before its run file is started anew (with its pre-trained weights, which --c would not pass)
        mode, extra = "continue", ("--c",)
    if mode == "new":
        extra = with_pretrained_weights(run, context.results_dir, extra)
    training_run = context.training_run(run, gpu)
    attempt = Attempt(mode=mode, command=training_run.command(extra), started_at=_now(), host=socket.gethostname(),
                      pid=os.getpid(), gpu=gpu, slurm_job_id=os.environ.get("SLURM_JOB_ID"))
    record.attempts.append(attempt)
    record.status, record.error = "running", None
    record.environment = runner_environment(context.device, gpu)
    _save(context, record)
    context.log_file(run).parent.mkdir(parents=True, exist_ok=True)
    watch, bar = _watcher(run, context, stop)
    gpus = run_gpus(context.device, gpu)
    energy_reader = energy_reader or read_nvml_energy
    energy_start = energy_reader(gpus)
    start = time.perf_counter()

    def close(outcome: str, error: str | None = None) -> None:
        attempt.ended_at, attempt.wall_seconds, attempt.outcome = _now(), time.perf_counter() - start, outcome
        attempt.energy_joules = energy_joules(energy_start, energy_reader(gpus))
        record.runner_wall_seconds = _runner_seconds(record)
        record.energy_joules = total_energy_joules([a.energy_joules for a in record.attempts])
        if outcome != "ok":
            record.status, record.error = (STATUS_INTERRUPTED if outcome == "interrupted" else "failed"), error

    try:
        train(training_run, context.run_folders(run), context.log_file(run), extra=extra, stop_when=watch,
              timeout=context.timeout_seconds)
    except Exception as error:  # recorded; the other runs go on
        close("failed", str(error)[-4000:])
        return _save(context, record)
    except BaseException:  # KeyboardInterrupt, SystemExit from submitit's preemption handler
        close("interrupted")
        _save(context, record)
        raise
    finally:
        if bar is not None:
            bar.close()
    if stop is not None and stop.is_set():
        close("interrupted")
        return _save(context, record)
    close("ok")
    if run_status(record.fold_folder, run.validates) != STATUS_DONE:
        record.status = "failed"
        record.error = (f"nnUNetv2_train exited normally but {record.fold_folder} has no checkpoint_final.pth and "
                        f"{VALIDATION_SUMMARY}; see {record.log_file}")
        return _save(context, record)
    return _finish(record, context)


def resolve_dataset_name(dataset: DatasetSpec, folders: NnunetFolders) -> str:
    """The ``DatasetXXX_Name`` folder of a spec dataset (from its name, its preset or nnU-Net's folders)."""
    if dataset.name:
        return dataset.name
    if dataset.synthetic_preset:
        from nnunet_progressive.datasets.generated import generated_task_name

        return f"Dataset{dataset.id:03d}_{generated_task_name(dataset.synthetic_preset)}"
    for root in (folders.raw, folders.preprocessed):
        found = sorted(p.name for p in root.glob(f"Dataset{dataset.id:03d}_*") if p.is_dir())
        if len(found) > 1:
            raise ProgressiveConfigError(f"dataset id {dataset.id} is ambiguous in {root}: {found}; give `name:`")
        if found:
            return found[0]
    raise ProgressiveConfigError(
        f"dataset id {dataset.id}: no Dataset{dataset.id:03d}_* folder in {folders.raw} or {folders.preprocessed}; "
        f"convert the dataset into nnUNet_raw first, or set prepare.synthetic_preset to generate one"
    )
