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
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nnunet_progressive.benchmark.execution import (
    STATUS_DONE,
    STATUS_INTERRUPTED,
    STATUS_TRAINED,
    RunContext,
    context_for,
    execute_run,
    resolve_dataset_name,
    run_status,
)
from nnunet_progressive.benchmark.imbalance import record_foreground
from nnunet_progressive.benchmark.pretraining import run_pretraining
from nnunet_progressive.benchmark.results import (
    load_records,
    preparation_path,
    read_record,
    record_path,
)
from nnunet_progressive.benchmark.spec import BenchmarkRun, BenchmarkSpec, DatasetSpec, SlurmSpec, expand_runs
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import atomic_write_json, check_writable_folder
from nnunet_progressive.core.knobs import problems_for_trainer
from nnunet_progressive.core.naming import dataset_id as parse_dataset_id
from nnunet_progressive.core.records import (
    BENCHMARK_SPEC_JSON,
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
    output_to_log,
    run_environment,
    run_logged,
)
from nnunet_progressive.nnunet.resolve import data_identifier

SLURM_ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED"}










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







# ----------------------------------------------------------------------------------------------- one run















# ------------------------------------------------------------------------------------------- preparation



def rank_for_pdl(dataset_id: int, configuration: str, plans: str, folds: Sequence[int | str],
                 folders: NnunetFolders, log_file: Path) -> list[Path]:
    """``nnprog rank -d ID -c CONFIGURATION -p PLANS --fold F ...`` for the spec's folds (the PDL trainers read the
    rankings it writes), called as the library function the command calls, on the benchmark's folders, its output
    into ``log_file``; returns the ranking files."""
    from nnunet_progressive.nnunet.offline import pdl_ranking

    title = (f"nnprog rank -d {dataset_id} -c {configuration} -p {plans} --fold {' '.join(str(f) for f in folds)} "
             f"(nnUNet_preprocessed={folders.preprocessed})")
    with output_to_log(log_file, title):
        return pdl_ranking.rank_dataset(dataset_id, configuration, plans, folds=list(folds),
                                        preprocessed=folders.preprocessed)


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
            rank_for_pdl(dataset_id, configuration, spec.training_plans(dataset), spec.folds, folders, log_file)
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
