"""A PGPS schedule for a run whose length changes while it trains (NNPROG_TIME_BUDGET), pure.

The stage boundaries scale with the run length: a stage that ended at epoch ``b`` of the schedule the run started with
ends at ``round(b x N / N0)`` of a run of N epochs. Boundaries already passed stay where they were (the epochs trained
keep their stage); the planned stage always trains the last epoch (at least), unless the run stops at once.
"""
from __future__ import annotations

from collections.abc import Mapping

from nnunet_progressive.pgps.schedule import Schedule, Stage


def rescaled_schedule(started: Schedule, current: Schedule, num_epochs: int, epochs_done: int) -> Schedule:
    """``current`` (the schedule in use, with the stages of ``started``, the schedule of the run's start) for a run of
    ``num_epochs``, the first ``epochs_done`` epochs kept as trained."""
    if len(started.stages) != len(current.stages):
        raise ValueError("the current schedule must have the stages of the started one")
    if not 1 <= num_epochs or num_epochs < epochs_done:
        raise ValueError(f"a run of {num_epochs} epochs cannot keep {epochs_done} trained epochs")
    scale = num_epochs / started.num_epochs
    cap = num_epochs - 1 if num_epochs > epochs_done else num_epochs  # the planned stage trains the last epoch
    ends = []
    for position, (first, now) in enumerate(zip(started.stages, current.stages, strict=True)):
        if position == len(started.stages) - 1:
            end = num_epochs
        elif now.last_epoch <= epochs_done:
            end = now.last_epoch  # trained: stays
        else:
            end = min(max(epochs_done, round(first.last_epoch * scale)), cap)
        ends.append(max(end, ends[-1] if ends else 0))
    stages = []
    start = 0
    for stage, end in zip(current.stages, ends, strict=True):
        stages.append(Stage(stage.index, stage.patch_size, stage.batch_size, start, end))
        start = end
    return Schedule(tuple(stages), current.planned_patch_size, current.planned_batch_size, num_epochs)


def epoch_weights(schedule: Schedule, first_epoch: int, last_epoch: int,
                  step_seconds: Mapping[tuple[tuple[int, ...], int], float] | None = None) -> list[float]:
    """Per epoch in ``[first_epoch, last_epoch)``: its stage's measured step time relative to the planned stage's
    (``step_seconds``: (patch, batch) -> seconds, from a profile); 1.0 each without a profile."""
    if step_seconds is None:
        return [1.0] * (last_epoch - first_epoch)
    planned = step_seconds[(tuple(schedule.planned_patch_size), schedule.planned_batch_size)]
    return [step_seconds[(tuple(stage.patch_size), stage.batch_size)] / planned
            for stage in (schedule.stage_at_epoch(e) for e in range(first_epoch, last_epoch))]
