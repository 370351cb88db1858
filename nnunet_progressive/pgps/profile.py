"""Measured step times of a PGPS schedule, pure: what they predict for a run, and which stages are worth training.

The voxel schedule assumes a step's time follows its voxels. A device has fixed costs per step (kernel launches,
the optimizer, the loss over deep-supervision outputs), so small patches often cost nearly as much as larger ones.
This module takes measured seconds per training iteration per stage (``nnprog profile``, or the profile a run
makes at its start) and answers, without torch or nnU-Net:

- per stage, the measured step time against the voxel-predicted one (:func:`voxel_predicted_seconds`);
- the run's time relative to constant patch from measured times, next to the voxel ideal (:func:`time_ratios`);
- the measured schedule (:func:`stages_worth_training`, :func:`merge_stages`): going down from the planned stage,
  a stage is kept only if its step takes at most ``1 - min_saving`` of the step of the next larger KEPT stage;
  the epochs of a stage left out go to the next larger kept stage (every kept stage ends where it ended in the voxel
  schedule), so no epoch trains a patch that costs as much as a bigger one, at about the same time per epoch;
- how the profile's time is shared out over the stages (:func:`stage_allowance`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.schedule import Schedule, Stage

MIN_STEP_SAVING = 0.10  # a smaller stage is trained only if its step takes at most 90% of the next larger kept one's
PROFILE_RUN_SHARE = 0.02  # a run's own profile (NNPROG_MEASURED_SCHEDULE=on, no matching file) aims at 2% of its time
MIN_TIMED_ITERATIONS = 3  # per stage and kind of timing, whatever the allowance (a median robust to one spike)


@dataclass(frozen=True)
class StageStepTime:
    """Measured seconds per training iteration of one stage.

    ``network_seconds``: the step alone on one batch used again (the loader stopped): the device's own cost.
    ``loader_seconds``: the step with the stage's loader running (waiting for batches included); None if not timed.
    """

    index: int
    patch_size: tuple[int, ...]
    batch_size: int
    network_seconds: float
    network_iterations: int
    loader_seconds: float | None = None
    loader_iterations: int = 0

    @property
    def voxels_per_iteration(self) -> int:
        return math.prod(self.patch_size) * self.batch_size


def check_times_fit(schedule: Schedule, times: Sequence[StageStepTime]) -> None:
    """Raise if ``times`` are not one per stage of ``schedule`` with the same patch and batch, in order."""
    expected = [(s.index, tuple(s.patch_size), s.batch_size) for s in schedule.stages]
    found = [(t.index, tuple(t.patch_size), t.batch_size) for t in times]
    if expected != found:
        raise ProgressiveConfigError(
            f"the step times are for stages {_stages_text(found)}, but the schedule has {_stages_text(expected)}; "
            f"profile this schedule again (nnprog profile with the same knobs)")
    bad = [t.index for t in times if not t.network_seconds > 0 or (t.loader_seconds is not None
                                                                   and not t.loader_seconds > 0)]
    if bad:
        raise ProgressiveConfigError(f"stage(s) {bad} have step times <= 0; the profile is damaged, make it again")


def _stages_text(stages: Sequence[tuple]) -> str:
    return "[" + ", ".join(f"{'x'.join(map(str, p))} b{b}" for _, p, b in stages) + "]"


def voxel_predicted_seconds(schedule: Schedule, planned_seconds: float) -> dict[int, float]:
    """Stage index -> seconds per iteration if time followed voxels, from the planned stage's measured time."""
    planned = schedule.planned_batch_size * math.prod(schedule.planned_patch_size)
    return {s.index: planned_seconds * s.voxels_per_iteration / planned for s in schedule.stages}


def time_ratios(schedule: Schedule, times: Sequence[StageStepTime]) -> dict[str, float | None]:
    """The run's time relative to constant planned patch: ``voxels`` (the ideal), ``network_only`` and
    ``with_loader`` (None unless every stage was timed with its loader). The reference is the planned stage's
    measured time; the schedule's last stage must be the planned patch and batch."""
    check_times_fit(schedule, times)
    last = schedule.stages[-1]
    if (tuple(last.patch_size), last.batch_size) != (tuple(schedule.planned_patch_size), schedule.planned_batch_size):
        raise ProgressiveConfigError("the schedule's last stage is not the planned patch and batch; no reference")
    ratios: dict[str, float | None] = {"voxels": schedule.relative_compute()}
    network = {t.index: t.network_seconds for t in times}
    ratios["network_only"] = schedule.relative_time(network, network[last.index])
    if all(t.loader_seconds is not None for t in times):
        loader = {t.index: float(t.loader_seconds) for t in times}
        ratios["with_loader"] = schedule.relative_time(loader, loader[last.index])
    else:
        ratios["with_loader"] = None
    return ratios


def stages_worth_training(step_seconds: Sequence[float], min_saving: float = MIN_STEP_SAVING) -> list[int]:
    """Indices of the stages to train, from their step times (smallest patch first, the planned one last).

    The planned (last) stage is always kept. Going down, stage k is kept iff ``t_k <= (1 - min_saving) * t_next``,
    where ``t_next`` is the step time of the next larger stage that was kept: a stage must save at least
    ``min_saving`` of a step against the patch that would otherwise train its epochs.
    """
    if not step_seconds:
        raise ValueError("no stages")
    if not 0.0 <= min_saving < 1.0:
        raise ProgressiveConfigError(f"the minimum step saving must lie in [0, 1), got {min_saving}")
    if any(not float(t) > 0 for t in step_seconds):
        raise ProgressiveConfigError(f"step times must be > 0, got {list(step_seconds)}")
    kept = [len(step_seconds) - 1]
    for index in range(len(step_seconds) - 2, -1, -1):
        if float(step_seconds[index]) <= (1.0 - min_saving) * float(step_seconds[kept[-1]]):
            kept.append(index)
    return sorted(kept)


def merge_stages(schedule: Schedule, kept: Sequence[int]) -> Schedule:
    """``schedule`` with only the ``kept`` stages (renumbered from 0); a stage left out gives its epochs to the next
    larger kept stage: every kept stage ends where it ended before and starts where the previous kept one ends."""
    kept = sorted(set(int(k) for k in kept))
    count = len(schedule.stages)
    if not kept or kept[-1] != count - 1 or kept[0] < 0:
        raise ValueError(f"kept stages {kept} must include the last stage {count - 1} and lie in 0..{count - 1}")
    stages = []
    first = 0
    for new_index, old_index in enumerate(kept):
        stage = schedule.stages[old_index]
        stages.append(Stage(new_index, stage.patch_size, stage.batch_size, first, stage.last_epoch))
        first = stage.last_epoch
    return Schedule(tuple(stages), schedule.planned_patch_size, schedule.planned_batch_size, schedule.num_epochs)


def kept_times(times: Sequence[StageStepTime], kept: Sequence[int]) -> list[StageStepTime]:
    """The step times of the kept stages, renumbered as :func:`merge_stages` renumbers them."""
    by_index = {t.index: t for t in times}
    return [StageStepTime(new, by_index[old].patch_size, by_index[old].batch_size, by_index[old].network_seconds,
                          by_index[old].network_iterations, by_index[old].loader_seconds,
                          by_index[old].loader_iterations) for new, old in enumerate(sorted(kept))]


@dataclass(frozen=True)
class MeasuredChoice:
    """The measured schedule and what it predicts, next to the voxel schedule's prediction from the same times."""

    kept: tuple[int, ...]
    schedule: Schedule
    default_ratios: Mapping[str, float | None]
    measured_ratios: Mapping[str, float | None]

    def summary(self) -> str:
        def text(ratios: Mapping[str, float | None]) -> str:
            loader = ratios["with_loader"]
            with_loader = f", {loader:.3f} with loader" if loader is not None else ""
            return f"{ratios['network_only']:.3f} network only{with_loader} (voxel ideal {ratios['voxels']:.3f})"

        return (f"measured schedule: {len(self.kept)} of {self.kept[-1] + 1} stages kept {list(self.kept)}; "
                f"time vs constant patch {text(self.measured_ratios)}; the voxel schedule: {text(self.default_ratios)}")

    @property
    def dropped(self) -> list[int]:
        total = self.kept[-1] + 1
        return [i for i in range(total) if i not in self.kept]


def measured_choice(schedule: Schedule, times: Sequence[StageStepTime],
                    min_saving: float = MIN_STEP_SAVING) -> MeasuredChoice:
    """The measured schedule of ``schedule`` from its network-only step times (:func:`stages_worth_training`)."""
    check_times_fit(schedule, times)
    kept = stages_worth_training([t.network_seconds for t in times], min_saving)
    merged = merge_stages(schedule, kept)
    return MeasuredChoice(tuple(kept), merged, time_ratios(schedule, times),
                          time_ratios(merged, kept_times(times, kept)))


def profile_order(count: int) -> list[int]:
    """The order stages are timed in: the planned (last) one first (the reference, and the estimate of the run's
    time), then from the smallest up."""
    return [count - 1, *range(count - 1)]


def stage_allowance(per_stage_seconds: float, total_seconds: float, elapsed_seconds: float,
                    stages_left: int) -> float:
    """Seconds the next stage may take: its share of what is left of the total, at most ``per_stage_seconds``
    (never below 0: each stage still gets its :data:`MIN_TIMED_ITERATIONS`)."""
    if stages_left < 1:
        raise ValueError("no stage left")
    return max(0.0, min(per_stage_seconds, (total_seconds - elapsed_seconds) / stages_left))


def run_profile_seconds(planned_step_seconds: float, iterations_per_epoch: int, num_epochs: int,
                        voxel_ratio: float, share: float = PROFILE_RUN_SHARE) -> float:
    """The time a run's own profile may take: ``share`` of the run's expected training time (its planned step
    time x iterations x epochs x the voxel schedule's ratio)."""
    return share * planned_step_seconds * iterations_per_epoch * num_epochs * voxel_ratio


def profile_table(schedule: Schedule, times: Sequence[StageStepTime]) -> str:
    """Per stage: patch, batch, measured seconds per iteration (network only, with loader), the voxel-predicted
    time and measured / predicted; then the run's time ratios against constant patch."""
    check_times_fit(schedule, times)
    last = times[-1]
    predicted = voxel_predicted_seconds(schedule, last.network_seconds)
    header = (f"{'stage':>5}  {'patch':<14} {'batch':>5} {'epochs':>6}  {'network s/it':>12}  {'voxel pred.':>11}  "
              f"{'meas/pred':>9}  {'w/ loader s/it':>14}")
    rows = [header, "-" * len(header)]
    for stage, t in zip(schedule.stages, times, strict=True):
        loader = f"{t.loader_seconds:.4f}" if t.loader_seconds is not None else "n/a"
        rows.append(f"{stage.index + 1:>5}  {'x'.join(map(str, stage.patch_size)):<14} {stage.batch_size:>5} "
                    f"{stage.num_epochs:>6}  {t.network_seconds:>12.4f}  {predicted[stage.index]:>11.4f}  "
                    f"{t.network_seconds / predicted[stage.index]:>9.2f}  {loader:>14}")
    rows.append("-" * len(header))
    ratios = time_ratios(schedule, times)
    loader = ratios["with_loader"]
    rows.append(f"time relative to constant patch: {ratios['network_only']:.3f} network only, "
                f"{'n/a' if loader is None else f'{loader:.3f}'} with the loader; voxel ideal {ratios['voxels']:.3f}")
    return "\n".join(rows)


def plot_profile(schedule: Schedule, times: Sequence[StageStepTime], path, title: str = "",
                 kept: Sequence[int] | None = None) -> None:
    """Measured and voxel-predicted seconds per iteration per stage (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from nnunet_progressive.core.io import atomic_save_figure

    check_times_fit(schedule, times)
    predicted = voxel_predicted_seconds(schedule, times[-1].network_seconds)
    ratios = time_ratios(schedule, times)
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(9, 5))
        x = [t.index + 1 for t in times]
        ax.plot(x, [predicted[t.index] for t in times], "k--", label="voxel-predicted")
        ax.plot(x, [t.network_seconds for t in times], "o-", label="measured, network only")
        if all(t.loader_seconds is not None for t in times):
            ax.plot(x, [t.loader_seconds for t in times], "s-", label="measured, with loader")
        if kept is not None:
            ax.plot([k + 1 for k in kept], [times[k].network_seconds for k in kept], "o", mfc="none", ms=14,
                    color="tab:green", label=f"measured schedule ({len(kept)} stages)")
        ax.set_xlabel("PGPS stage")
        ax.set_ylabel("seconds per training iteration")
        ax.set_ylim(bottom=0)
        ax.set_xticks(x, [f"{i}\n{'x'.join(map(str, t.patch_size))}\nb{t.batch_size}" for i, t in zip(x, times)],
                      fontsize=7)
        ax.legend()
        loader = ratios["with_loader"]
        ax.set_title(f"{title}\nrun time vs constant patch: network {ratios['network_only']:.2f}, loader "
                     f"{'n/a' if loader is None else f'{loader:.2f}'}, voxel ideal {ratios['voxels']:.2f}",
                     fontsize=9)
        fig.tight_layout()
        atomic_save_figure(fig, path, dpi=100)
        plt.close(fig)
