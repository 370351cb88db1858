"""The benchmark runner: prepare the datasets, train every run of a spec with nnU-Net's own commands, record it.

One run = (dataset, configuration, plans, trainer, settings, fold, seed); its settings (the effective knobs and
the small network, see :mod:`.spec`) are part of its id and of its folder
``<nnUNet_results>/settings-<id>/seed_<s>/...``, so a run whose knobs changed is a new run. Its state is read
from its fold folder:

- ``done``: ``checkpoint_final.pth`` and ``validation/summary.json`` exist -> skipped;
- ``trained``: ``checkpoint_final.pth`` without the validation summary -> ``nnUNetv2_train ... --val``;
- ``interrupted``: ``checkpoint_latest.pth`` exists -> ``nnUNetv2_train ... --c``;
- ``new``: anything else -> ``nnUNetv2_train ...``.

So a second ``nnprog benchmark run`` skips finished runs, resumes interrupted ones and retries failed ones.
Before anything is prepared or trained (a dry run included), every trainer name is looked up with nnU-Net's own
search, and knobs a trainer does not read are refused; once the datasets are planned, every PGPS/RPSS run's
schedule is built with its knobs, so a run that would stop at start (too few epochs for its stages) is reported
before anything trains. Each run's record is ``<results_dir>/runs/<run_id>.json``
(:class:`~nnunet_progressive.core.records.BenchmarkRecord`, written atomically at every state change); what
preparing a dataset took is in ``<results_dir>/prepared/<dataset>.json``.

Executors (``executor.type`` in the spec): ``local`` trains sequentially (with a bar of epochs per training), or
with ``gpus: [0, 1, ...]`` one run per GPU at a time (``CUDA_VISIBLE_DEVICES`` set per subprocess); ``slurm``
submits one submitit job array (``slurm_array_parallelism``), whose tasks are :class:`SlurmRunJob` callables that
submitit requeues after a time-out or preemption, resuming with ``--c``. Datasets are planned, preprocessed (and
ranked, ``prepare.rank``) by the process that runs ``nnprog benchmark run``, before anything is trained or
submitted.
"""
from __future__ import annotations

import json
import math
import os
import platform
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
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
from nnunet_progressive.benchmark.imbalance import record_foreground
from nnunet_progressive.benchmark.pretraining import run_pretraining, with_pretrained_weights
from nnunet_progressive.benchmark.progress import EpochBar, expected_epochs
from nnunet_progressive.benchmark.results import (
    VALIDATION_SUMMARY,
    collect_run,
    load_records,
    preparation_path,
    read_record,
    record_path,
    write_record,
)
from nnunet_progressive.benchmark.spec import BenchmarkRun, BenchmarkSpec, DatasetSpec, SlurmSpec, expand_runs
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import atomic_write_json, check_writable_folder
from nnunet_progressive.core.knobs import problems_for_trainer
from nnunet_progressive.core.naming import dataset_id as parse_dataset_id
from nnunet_progressive.core.records import (
    BENCHMARK_SPEC_JSON,
    Attempt,
    BenchmarkRecord,
    DatasetPreparation,
    ranking_file_name,
)
from nnunet_progressive.core.records import read_record as read_typed_record
from nnunet_progressive.core.records import (
    write_record as write_typed_record,
)
from nnunet_progressive.datasets.prepare import plan_and_preprocess, write_small_plans
from nnunet_progressive.nnunet.orchestration.runner import (
    NnunetFolders,
    TrainingRun,
    run_environment,
    run_logged,
    train,
)
from nnunet_progressive.nnunet.resolve import data_identifier

STATUS_NEW, STATUS_INTERRUPTED, STATUS_TRAINED, STATUS_DONE = "new", "interrupted", "trained", "done"
MODE_FOR_STATUS = {STATUS_NEW: ("new", ()), STATUS_INTERRUPTED: ("continue", ("--c",)),
                   STATUS_TRAINED: ("validate", ("--val",))}
SLURM_ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED"}


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


# -------------------------------------------------------------------------------------- checks before work

def check_trainers(spec: BenchmarkSpec) -> None:
    """Every trainer of the spec exists (nnU-Net's own search) and reads every ``NNPROG_*`` knob set for it.

    Raises one :class:`ProgressiveConfigError` listing every problem, before anything is prepared or trained.
    """
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class

    classes: dict[str, type | ProgressiveConfigError] = {}
    problems = []
    for index, variant in enumerate(spec.variants()):
        if variant.trainer not in classes:
            try:
                classes[variant.trainer] = find_trainer_class(variant.trainer)
            except ProgressiveConfigError as error:
                classes[variant.trainer] = error
        found = classes[variant.trainer]
        if isinstance(found, ProgressiveConfigError):
            problems.append(f"trainers[{index}]: {found}")
            continue
        features = getattr(found, "knob_features", None)  # the knobs a trainer of this package reads
        if spec.seed_training and not callable(features):
            problems.append(f"trainers[{index}] ({variant.label}): {variant.trainer} is not a trainer of "
                            f"nnunet-progressive, so it cannot read NNPROG_SEED and `seed_training: true` would not "
                            f"seed it; use a trainer of this package (nnUNetTrainer_ConstantPatch trains as "
                            f"nnUNetTrainer) or set `seed_training: false`")
        if callable(features):
            for problem in problems_for_trainer(variant.trainer, features(), environ=variant.knobs):
                what = problem.split("; unset it")[0]  # the environment's fix; in a spec the fix is where it is set
                problems.append(f"trainers[{index}] ({variant.label}): {what}; remove it for this trainer (a knob in "
                                f"the global `knobs:` reaches every trainer: move it into the `knobs:` of the "
                                f"entries that read it)")
    if problems:
        raise ProgressiveConfigError(
            "spec: " + ("; ".join(problems) if len(problems) == 1 else "\n  " + "\n  ".join(problems)))


SPEC_SCHEDULE_FIX = "fix the spec's knobs for them, e.g. NNPROG_EPOCHS in the trainer's own `knobs:`"


def check_schedules(runs: Sequence[BenchmarkRun], folders: NnunetFolders, device: str = "cpu",
                    fix: str = SPEC_SCHEDULE_FIX) -> None:
    """Every patch-stage trainer's schedule can be built on its planned dataset with its knobs (enough epochs for
    its stages, a valid smallest patch, ...), checked once datasets are planned and before anything trains.

    Configurations not planned yet are skipped (a dry run before the first preparation). Raises one
    :class:`ProgressiveConfigError` listing every (trainer, dataset, configuration) that would stop at start.
    """
    from nnunet_progressive.nnunet.hooks.pgps import schedule_of_new_run
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
    from nnunet_progressive.nnunet.resolve import resolve_configuration

    problems, seen, planned = [], set(), {}
    for run in runs:
        key = (run.label, run.settings_id, run.dataset, run.configuration, run.plans)
        if key in seen:
            continue
        seen.add(key)
        if not (folders.preprocessed / run.dataset / f"{run.plans}.json").is_file():
            continue
        where = (run.dataset, run.configuration, run.plans)  # read once for all trainers of a dataset
        try:
            if where not in planned:
                planned[where] = resolve_configuration(*where, folders.preprocessed)
            schedule_of_new_run(find_trainer_class(run.trainer), planned[where],
                                run_environment(folders, run.knobs, device))
        except ProgressiveConfigError as error:
            problems.append(f"{run.label} on {run.dataset} {run.configuration}: {error}")
    if problems:
        raise ProgressiveConfigError(
            f"these runs would stop at start ({fix}):\n  " + "\n  ".join(problems))


def current_settings(spec: BenchmarkSpec) -> set[tuple[str, str]]:
    """(trainer, settings id) of every trainer entry: records with another pair are from an earlier spec."""
    return {(v.trainer, v.settings_id) for v in spec.variants()}


# ------------------------------------------------------------------------------------------- environment

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


# ----------------------------------------------------------------------------------------------- one run

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
    if force_continue and status == STATUS_NEW:
        mode, extra = "continue", ("--c",)  # a requeued SLURM job; nnU-Net starts over if nothing was saved
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


# ------------------------------------------------------------------------------------------- preparation

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


def rank_command(dataset_id: int, configuration: str, plans: str, folds: Sequence[int | str]) -> list[str]:
    """``nnprog rank`` for one configuration and the spec's folds (the PDL trainers read the rankings it writes)."""
    return [sys.executable, "-m", "nnunet_progressive.cli.main", "rank", "-d", str(dataset_id), "-c", configuration,
            "-p", plans, "--fold", *(str(f) for f in folds)]


def prepare_dataset(spec: BenchmarkSpec, dataset: DatasetSpec, folders: NnunetFolders, log_dir: Path) -> str:
    """Generate (synthetic preset), plan and preprocess where needed, write the small plans, rank (``prepare.rank``);
    returns the dataset's folder name. What took how long is added to ``prepared/<name>.json``."""
    name = resolve_dataset_name(dataset, folders)
    dataset_id = parse_dataset_id(name)
    log_file = log_dir / f"prepare_{name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    record_file = preparation_path(spec.results_dir, name)
    record = read_typed_record(record_file, DatasetPreparation, missing_ok=True) or DatasetPreparation(dataset=name)
    clock = time.perf_counter()
    if dataset.synthetic_preset and not (folders.raw / name / "dataset.json").is_file():
        from nnunet_progressive.datasets.generated import write_generated

        print(f"generating {name} (generated dataset {dataset.synthetic_preset})", file=sys.stderr)
        write_generated(dataset.synthetic_preset, folders.raw, dataset_id)
        record.generated_seconds = time.perf_counter() - clock
    plans_file = folders.preprocessed / name / f"{dataset.plans}.json"
    clock = time.perf_counter()
    if not plans_file.is_file():
        if dataset.plans != "nnUNetPlans":
            raise ProgressiveConfigError(
                f"{plans_file} does not exist; plans {dataset.plans!r} need their own planner: run "
                f"nnUNetv2_plan_and_preprocess -d {dataset_id} -pl <planner> first (the runner only plans "
                f"nnUNetPlans itself)"
            )
        if not (folders.raw / name).is_dir():
            raise ProgressiveConfigError(
                f"{name} is neither in {folders.raw} nor preprocessed in {folders.preprocessed}; convert it first"
            )
        print(f"planning and preprocessing {name} {list(dataset.configurations)} (log: {log_file})", file=sys.stderr)
        plan_and_preprocess(dataset_id, folders, dataset.configurations, dataset.num_processes, log_file)
        record.plan_seconds = time.perf_counter() - clock
    plans = json.loads(plans_file.read_text())
    unknown = [c for c in dataset.configurations if c not in plans.get("configurations", {})]
    if unknown:
        raise ProgressiveConfigError(f"configurations {unknown} are not in {plans_file}; it has "
                                     f"{sorted(plans.get('configurations', {}))}")
    missing = []
    for configuration in dataset.configurations:
        identifier = data_identifier(plans, configuration)
        data_folder = folders.preprocessed / name / (identifier or "")
        if identifier is None or not data_folder.is_dir() or not any(data_folder.iterdir()):
            missing.append(configuration)
    if missing:
        print(f"preprocessing {name} {missing} (log: {log_file})", file=sys.stderr)
        clock = time.perf_counter()
        run_logged(["nnUNetv2_preprocess", "-d", str(dataset_id), "-plans_name", dataset.plans, "-c", *missing,
                    "-np", *([str(dataset.num_processes)] * len(missing))], folders.environment(), log_file)
        record.plan_seconds = (record.plan_seconds or 0.0) + time.perf_counter() - clock
    if spec.small_network is not None:
        write_small_plans(plans_file, dataset.configurations, spec.small_network.features_per_stage,
                          spec.small_network.convs_per_stage, plans_name=spec.training_plans(dataset))
    if dataset.prepare.rank:
        for configuration in dataset.configurations:
            identifier = data_identifier(plans, configuration) or configuration
            rankings = [folders.preprocessed / name / ranking_file_name(identifier, fold) for fold in spec.folds]
            if all(ranking.is_file() for ranking in rankings):
                continue
            print(f"ranking the cases of {name} {configuration} for PDL (nnprog rank; log: {log_file})",
                  file=sys.stderr)
            clock = time.perf_counter()
            run_logged(rank_command(dataset_id, configuration, spec.training_plans(dataset), spec.folds),
                       run_environment(folders), log_file)
            record.rank_seconds = (record.rank_seconds or 0.0) + time.perf_counter() - clock
            record.ranking_files = sorted({*record.ranking_files, *(str(ranking) for ranking in rankings)})
    write_typed_record(record_file, record)
    record_foreground(spec.results_dir, folders.raw / name)  # the report's imbalance table (once per dataset)
    return name


# --------------------------------------------------------------------------------------------- executors

def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="run", desc="benchmark", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                position=0)


def run_local(runs: Sequence[BenchmarkRun], context: RunContext, gpus: Sequence[int] | None = None,
              progress: bool = True) -> list[BenchmarkRecord]:
    """Sequentially, or one run per GPU of ``gpus`` at a time (a thread per GPU, each waiting on its subprocess)."""
    records: list[BenchmarkRecord] = []
    bar = _progress(len(runs), progress)
    try:
        if not gpus or len(gpus) == 1:
            gpu = gpus[0] if gpus else None
            for run in runs:
                bar.set_postfix_str(f"{run.label} fold {run.fold} seed {run.seed}", refresh=True)
                records.append(execute_run(run, context, gpu=gpu))
                bar.update()
            return records
        free: queue.Queue[int] = queue.Queue()
        for gpu in gpus:
            free.put(gpu)
        stop = threading.Event()
        context = replace(context, epoch_bars=False)  # one bar per GPU would interleave

        def work(run: BenchmarkRun) -> BenchmarkRecord:
            gpu = free.get()
            try:
                return execute_run(run, context, gpu=gpu, stop=stop)
            finally:
                free.put(gpu)

        pool = ThreadPoolExecutor(max_workers=len(gpus), thread_name_prefix="nnprog-gpu")
        try:
            futures = [pool.submit(work, run) for run in runs]
            for future in as_completed(futures):
                records.append(future.result())
                bar.update()
        except BaseException:
            stop.set()  # the workers kill their nnUNetv2_train and record the run as interrupted
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        order = {run.run_id: i for i, run in enumerate(runs)}
        return sorted(records, key=lambda r: order[r.run_id])
    finally:
        bar.close()


_SLURM_JOB_CLASS: type | None = None


def _slurm_job_class() -> type:
    """:class:`SlurmRunJob`, built on first use so that submitit is imported only by the SLURM executor."""
    global _SLURM_JOB_CLASS
    if _SLURM_JOB_CLASS is None:
        import submitit

        class SlurmRunJob(submitit.helpers.Checkpointable):
            """One array task: brings a run to ``done``; requeued by submitit with ``--c`` after a preemption."""

            def __init__(self, resume: bool = False) -> None:
                self.resume = resume

            def __call__(self, run: BenchmarkRun, context: RunContext) -> BenchmarkRecord:
                return execute_run(run, context, force_continue=self.resume)

            def checkpoint(self, run: BenchmarkRun, context: RunContext) -> submitit.helpers.DelayedSubmission:
                return submitit.helpers.DelayedSubmission(type(self)(resume=True), run, context)

        SlurmRunJob.__module__ = __name__
        SlurmRunJob.__qualname__ = "SlurmRunJob"
        _SLURM_JOB_CLASS = SlurmRunJob
    return _SLURM_JOB_CLASS


def __getattr__(name: str) -> Any:  # module attribute `SlurmRunJob`, resolvable by pickle in the job
    if name == "SlurmRunJob":
        return _slurm_job_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def slurm_executor(slurm: SlurmSpec, folder: Path, device: str, job_name: str = "nnprog"):
    """A configured ``submitit.AutoExecutor`` (``slurm.cluster``: slurm, or local/debug for testing)."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=slurm.cluster,
                                     slurm_max_num_timeout=slurm.max_num_resubmits)
    parameters: dict[str, Any] = {
        "name": job_name,
        "timeout_min": slurm.time_min,
        "gpus_per_node": slurm.gpus_per_node if device == "cuda" else 0,
        "cpus_per_task": slurm.cpus_per_task,
        "mem_gb": slurm.mem_gb,
        "slurm_partition": slurm.partition,
        "slurm_array_parallelism": slurm.array_parallelism,
        "slurm_setup": list(slurm.setup) or None,
        **{f"slurm_{key}": value for key, value in slurm.extra.items()},
    }
    executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
    return executor


def _slurm_jobs_file(context: RunContext) -> Path:
    return context.results_dir / "slurm" / "jobs.json"


def _active_slurm_jobs(context: RunContext, folder: Path) -> dict[str, str]:
    """run_id -> job id of runs whose previously submitted SLURM job is still queued or running."""
    import submitit

    path = _slurm_jobs_file(context)
    if not path.is_file():
        return {}
    active = {}
    for run_id, job_id in json.loads(path.read_text()).items():
        try:
            state = submitit.SlurmJob(folder=folder, job_id=job_id).state
        except Exception:  # sacct unavailable or job unknown: treat as finished
            continue
        if state.split(" ")[0] in SLURM_ACTIVE_STATES:
            active[run_id] = job_id
    return active


def submit_slurm(runs: Sequence[BenchmarkRun], context: RunContext, slurm: SlurmSpec,
                 folder: Path | None = None) -> list[Any]:
    """Submit the runs that are not done (nor still queued from an earlier call) as one job array."""
    folder = folder or context.results_dir / "slurm" / "%j"
    active = _active_slurm_jobs(context, folder) if slurm.cluster == "slurm" else {}
    pending = []
    for run in runs:
        if run_status(context.fold_folder(run), run.validates) == STATUS_DONE:
            execute_run(run, context)  # only writes its record
        elif run.run_id not in active:
            pending.append(run)
    if active:
        print(f"{len(active)} run(s) still queued or running in SLURM, not resubmitted", file=sys.stderr)
    if not pending:
        return []
    executor = slurm_executor(slurm, folder, context.device)
    jobs = executor.map_array(_slurm_job_class()(), pending, [context] * len(pending))
    jobs_file = _slurm_jobs_file(context)
    previous = json.loads(jobs_file.read_text()) if jobs_file.is_file() else {}
    atomic_write_json(jobs_file, {**previous, **{r.run_id: j.job_id for r, j in zip(pending, jobs)}})
    return jobs


def wait_for_jobs(jobs: Sequence[Any], progress: bool = True) -> list[BenchmarkRecord | None]:
    """Block until every submitit job has finished; returns the records they returned (None if a job failed)."""
    records = []
    bar = _progress(len(jobs), progress)
    try:
        for job in jobs:
            try:
                records.append(job.result())
            except Exception as error:  # the job itself failed (not the training: that is in the record)
                print(f"job {job.job_id} failed: {error}", file=sys.stderr)
                records.append(None)
            bar.update()
    finally:
        bar.close()
    return records


# ----------------------------------------------------------------------------------------- orchestration

@dataclass
class BenchmarkOutcome:
    runs: list[BenchmarkRun]
    statuses: dict[str, str] = field(default_factory=dict)  # run_id -> fold-folder status before this call
    records: list[BenchmarkRecord | None] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    stale_records: list[str] = field(default_factory=list)  # runs/ records of runs this spec no longer has

    @property
    def failed(self) -> list[str]:
        """Runs that failed or were interrupted in this call."""
        bad = ("failed", STATUS_INTERRUPTED)
        return [r.run_id for r in self.records if r is not None and r.status in bad]


def stale_run_ids(spec: BenchmarkSpec) -> list[str]:
    """Records in ``runs/`` made with a trainer or settings the spec no longer has (the report leaves them out)."""
    if not (spec.results_dir / "runs").is_dir():
        return []
    current = current_settings(spec)
    return [r.run_id for r in load_records(spec.results_dir) if (r.trainer, r.settings_id) not in current]


def check_output_folders(spec: BenchmarkSpec, folders: NnunetFolders) -> None:
    """Every folder a benchmark writes (results_dir, nnU-Net's three) is or can be made a writable folder: one
    clear error before any dataset is generated or run trained (the check creates nothing)."""
    check_writable_folder(spec.results_dir, "results_dir")
    for name, folder in (("nnUNet_raw", folders.raw), ("nnUNet_preprocessed", folders.preprocessed),
                         ("nnUNet_results", folders.results)):
        check_writable_folder(folder, f"{name} (from the spec's nnunet_root or the environment)")


def run_benchmark(spec: BenchmarkSpec, *, dry_run: bool = False, prepare_only: bool = False, wait: bool = False,
                  progress: bool = True, log: Callable[[str], None] = print,
                  schedule_fix: str = SPEC_SCHEDULE_FIX) -> BenchmarkOutcome:
    """Check the trainers, prepare, then train every run of ``spec`` with its executor (see the module docstring).

    ``schedule_fix``: how the user mends a run whose schedule cannot be built (in the words of the command that
    made the spec)."""
    folders = spec.folders()
    if not dry_run:
        check_output_folders(spec, folders)  # before the trainers are imported (tens of seconds) or anything runs
    check_trainers(spec)
    context = context_for(spec, folders, epoch_bars=progress and spec.executor.type == "local")
    if dry_run:
        names = [resolve_dataset_name(d, folders) for d in spec.datasets]
        runs = expand_runs(spec, names)
        check_schedules(runs, folders, spec.executor.device, schedule_fix)
        return BenchmarkOutcome(runs, {r.run_id: run_status(context.fold_folder(r), r.validates) for r in runs},
                                stale_records=stale_run_ids(spec))
    spec.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(spec.results_dir / BENCHMARK_SPEC_JSON, spec.to_dict())
    names = [prepare_dataset(spec, d, folders, spec.results_dir / "logs") for d in spec.datasets]
    runs = expand_runs(spec, names)
    check_schedules(runs, folders, spec.executor.device, schedule_fix)
    outcome = BenchmarkOutcome(runs, {r.run_id: run_status(context.fold_folder(r), r.validates) for r in runs},
                               stale_records=stale_run_ids(spec))
    if prepare_only:
        return outcome
    if spec.pretraining:
        run_pretraining(spec, folders, names, log)
    counts = {s: list(outcome.statuses.values()).count(s) for s in (STATUS_DONE, STATUS_INTERRUPTED, STATUS_TRAINED)}
    log(f"{len(runs)} runs: {counts[STATUS_DONE]} done (skipped), {counts[STATUS_INTERRUPTED]} to resume with --c, "
        f"{counts[STATUS_TRAINED]} to validate, {len(runs) - sum(counts.values())} new; records in "
        f"{spec.results_dir / 'runs'}")
    if outcome.stale_records:
        log(f"{len(outcome.stale_records)} record(s) in {spec.results_dir / 'runs'} are of runs this spec no longer "
            f"has (other knobs or trainers); they stay, and the report leaves them out")
    if spec.executor.type == "local":
        outcome.records = list(run_local(runs, context, spec.executor.gpus, progress))
        return outcome
    outcome.jobs = submit_slurm(runs, context, spec.executor.slurm)
    log(f"submitted {len(outcome.jobs)} run(s) as a submitit job array"
        + (f" ({outcome.jobs[0].job_id.split('_')[0]})" if outcome.jobs else ""))
    if wait or spec.executor.slurm.cluster != "slurm":
        wait_for_jobs(outcome.jobs, progress)
        outcome.records = [read_record(spec.results_dir, r.run_id) for r in runs if
                           record_path(spec.results_dir, r.run_id).is_file()]
    return outcome
