"""NNPROG_MEASURED_SCHEDULE=on: a PGPS run trains only the stages whose measured step saves time
(:func:`nnunet_progressive.pgps.profile.stages_worth_training`), fixed in the run's record.

When a new run starts, its stages come from the profile record of this trainer, plans and configuration in the
dataset's preprocessed folder (``nnprog profile`` writes it) if that profile matches the run (device, torch version,
compile setting, plans entry, the voxel schedule's stages); otherwise the run times its stages itself after nnU-Net
built its network (within :data:`~nnunet_progressive.pgps.profile.PROFILE_RUN_SHARE` of its expected time, logged)
and writes that profile for the next run. The chosen stages, the rule's threshold and the profile they came from are
written to ``pgps_measured_schedule.json`` in the fold folder before the first epoch; ``--c`` (and ``--val``) take the
stages from there, whatever the profile file says by then.
"""
from __future__ import annotations

import os
from pathlib import Path
from time import perf_counter

from nnunet_progressive.core.errors import RunStateError
from nnunet_progressive.core.records import (
    CHECKPOINT_BEST,
    CHECKPOINT_FINAL,
    CHECKPOINT_LATEST,
    MEASURED_SCHEDULE_JSON,
    RUN_IDENTITY_JSON,
    MeasuredScheduleRecord,
    RunIdentity,
    StepProfile,
    profile_file_name,
    read_record,
    write_record,
)
from nnunet_progressive.pgps.profile import (
    MIN_STEP_SAVING,
    PROFILE_RUN_SHARE,
    measured_choice,
    merge_stages,
    run_profile_seconds,
)
from nnunet_progressive.pgps.schedule import Schedule

OWN_PROFILE = "the run's own profile, made at its start"  # the source a record names when no profile file matched
PER_STAGE_CAP_SECONDS = 60.0  # a run's own profile: at most this much timing per stage, whatever the share allows


def profile_path(trainer) -> Path:
    """Where ``nnprog profile`` writes the profile a run of ``trainer`` reads."""
    return Path(trainer.preprocessed_dataset_folder_base) / profile_file_name(
        type(trainer).__name__, trainer.plans_manager.plans_name, trainer.configuration_name)


def record_path(trainer) -> Path:
    return Path(trainer.output_folder) / MEASURED_SCHEDULE_JSON


def step_seconds_of(profile: StepProfile) -> dict[tuple[tuple[int, ...], int], float]:
    """(patch, batch) -> network-only seconds per iteration (the time budget's epoch weights)."""
    return {(tuple(s.patch_size), s.batch_size): s.network_seconds for s in profile.stages}


def recorded_schedule(trainer, voxel_schedule: Schedule) -> tuple[Schedule, StepProfile] | None:
    """A continued run's measured schedule and its profile from its record (None for a new run, or a restarted one
    without a record); an error where a run that has trained lost its record."""
    if trainer._new_run:
        return None
    identity = read_record(Path(trainer.output_folder) / RUN_IDENTITY_JSON, RunIdentity, missing_ok=True)
    record = read_record(record_path(trainer), MeasuredScheduleRecord, missing_ok=True)
    if record is not None and identity is not None and record.run_id == identity.run_id:
        stages = [(list(s.patch_size), s.batch_size) for s in record.profile.stages]
        if stages != [(list(s.patch_size), s.batch_size) for s in voxel_schedule.stages]:
            raise RunStateError(
                f"{record_path(trainer)} was chosen from stages {stages}, but the run's settings give other stages "
                f"now; the run's files were changed. Fix: restore the fold folder from a copy, or start a new run "
                f"(remove {trainer.output_folder})")
        trainer.print_to_log_file(
            f"Measured schedule of the run ({MEASURED_SCHEDULE_JSON}, from {record.source}): stages "
            f"{record.kept_stages} of the voxel schedule's {len(voxel_schedule.stages)}")
        return merge_stages(voxel_schedule, record.kept_stages), record.profile
    trained = any((Path(trainer.output_folder) / name).is_file()
                  for name in (CHECKPOINT_FINAL, CHECKPOINT_LATEST, CHECKPOINT_BEST))
    if trained:
        raise RunStateError(
            f"the run in {trainer.output_folder} trains a measured schedule (NNPROG_MEASURED_SCHEDULE=on) but "
            f"{MEASURED_SCHEDULE_JSON} of this run is missing; its stages cannot be known. Fix: restore it from a copy "
            f"of the fold folder, or start a new run (remove {trainer.output_folder})")
    return None


def choose_from_profile_file(trainer, voxel_schedule: Schedule):
    """(schedule, pending record) from a matching profile file, or None where there is none (the reason logged)."""
    from nnunet_progressive.nnunet.hooks.step_profile import profile_mismatch

    path = profile_path(trainer)
    profile = read_record(path, StepProfile, missing_ok=True)
    if profile is None:
        trainer.print_to_log_file(f"Measured schedule: no profile at {path}; the run profiles its stages at its start")
        return None
    mismatch = profile_mismatch(profile, trainer, voxel_schedule.stages)
    if mismatch:
        trainer.print_to_log_file(f"Measured schedule: the profile {path} is not of this run ({mismatch}); the run "
                                  f"profiles its stages at its start")
        return None
    return _chosen(trainer, voxel_schedule, profile, str(path))


def _chosen(trainer, voxel_schedule: Schedule, profile: StepProfile, source: str):
    from nnunet_progressive.nnunet.hooks.step_profile import times_of

    choice = measured_choice(voxel_schedule, times_of(profile), MIN_STEP_SAVING)
    trainer.print_to_log_file(f"Stages chosen from {source}: {choice.summary()}")
    pending = dict(min_step_saving=MIN_STEP_SAVING, kept_stages=list(choice.kept), source=source, profile=profile,
                   predicted_time_ratio=dict(choice.measured_ratios),
                   voxel_schedule_time_ratio=dict(choice.default_ratios))
    return choice.schedule, pending


def profile_at_start(trainer, voxel_schedule: Schedule):
    """(schedule, pending record) from timing the run's own stages now (network only), within the share of the
    run's expected time; the profile is also written where the next run of this device finds it."""
    from nnunet_progressive.core.errors import ProgressiveConfigError
    from nnunet_progressive.nnunet.hooks.step_profile import profile_record, profile_stages

    if trainer.is_ddp:  # timed loops would run different step counts per rank, and every step synchronises them
        raise ProgressiveConfigError(
            f"NNPROG_MEASURED_SCHEDULE=on under DDP needs a profile of this device made beforehand; none matches at "
            f"{profile_path(trainer)}. Fix: run `nnprog profile -d {trainer.plans_manager.dataset_name} -c "
            f"{trainer.configuration_name} -p {trainer.plans_manager.plans_name} -tr {type(trainer).__name__}` on one "
            f"GPU of this machine, then start the run again")
    def total_from_planned(planned_time, _seconds_so_far: float) -> float:
        expected = run_profile_seconds(planned_time.network_seconds, trainer.num_iterations_per_epoch,
                                       trainer.num_epochs, voxel_schedule.relative_compute(), 1.0)
        trainer.print_to_log_file(
            f"Measured schedule: profiling {len(voxel_schedule.stages)} stages (network only) within "
            f"{100 * PROFILE_RUN_SHARE:.0f}% of the run's expected {expected:.0f} s")
        return PROFILE_RUN_SHARE * expected

    start = perf_counter()
    times = profile_stages(trainer, voxel_schedule.stages, PER_STAGE_CAP_SECONDS, float("inf"), with_loader=False,
                           progress=False, first_done=total_from_planned)
    seconds = perf_counter() - start
    profile = profile_record(trainer, times, seconds, trainer.plans_manager.dataset_name, with_loader=False)
    expected = run_profile_seconds(times[-1].network_seconds, trainer.num_iterations_per_epoch, trainer.num_epochs,
                                   voxel_schedule.relative_compute(), 1.0)
    trainer.print_to_log_file(f"Measured schedule: profiled in {seconds:.1f} s, {100 * seconds / expected:.1f}% of "
                              f"the run's expected {expected:.0f} s (at least 1 untimed and 3 timed steps a stage)")
    if trainer.local_rank == 0:
        path = profile_path(trainer)
        try:
            write_record(path, profile)
            trainer.print_to_log_file(f"Measured schedule: profile written to {path} for the next run on this device")
        except OSError as error:
            trainer.print_to_log_file(f"Measured schedule: profile not written to {path} ({error}); the run's record "
                                      f"keeps it")
    return _chosen(trainer, voxel_schedule, profile, OWN_PROFILE)


def write_choice(trainer, pending: dict) -> None:
    """The run's record of its measured schedule (before the first epoch)."""
    if trainer.local_rank != 0:
        return
    os.makedirs(trainer.output_folder, exist_ok=True)
    write_record(record_path(trainer), MeasuredScheduleRecord(run_id=trainer._run_id, **pending))
