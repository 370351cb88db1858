"""NNPROG_MEMORY_TARGET in the PGPS Performance trainers: the planned stage's memory estimate of the trainer's
network (the rule is :mod:`nnunet_progressive.pgps.memory_target`), and the measured peak of each stage's first
iterations on CUDA."""
from __future__ import annotations

import math

import torch

from nnunet_progressive.architectures.memory import BYTES_FLOAT16, activation_bytes, conv_unet_from_plan
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import ProgressiveSettings
from nnunet_progressive.pgps.memory_target import (
    PlannedStageMemory,
    budget_text,
    check_budget_knobs,
    fixed_bytes,
    memory_target_budget,
    peak_lines,
)

PEAK_ITERATIONS = 3  # a stage's first iterations whose peak is compared with the target


def network_parameters(trainer_class: type, plans_manager, configuration_manager, inputs: int, outputs: int,
                       planned_patch) -> int:
    """Parameters of the trainer's network, built on torch's meta device (no memory, no weights' values)."""
    configuration = configuration_manager.configuration
    saved = configuration["patch_size"]
    configuration["patch_size"] = [int(p) for p in planned_patch]  # the transformers' adjusted patch
    try:
        with torch.device("meta"):
            network = trainer_class.build_network_architecture(plans_manager, configuration_manager, inputs, outputs,
                                                               True)
    finally:
        configuration["patch_size"] = saved
    return int(sum(p.numel() for p in network.parameters()))


def planned_activation_bytes(configuration_manager, rule, inputs: int, planned_batch: int) -> float:
    """The planned stage's activations (fp16 autocast, as nnU-Net trains on CUDA): the network's ``sample_cost``
    (transformers), else the plan's U-Net counted by ``architectures/memory.py``."""
    if rule.sample_cost is not None:
        return planned_batch * rule.sample_cost(tuple(rule.planned_patch))
    architecture = configuration_manager.configuration.get("architecture")
    if architecture is None:
        raise ProgressiveConfigError("NNPROG_MEMORY_TARGET needs the plan's `architecture` entry (nnU-Net >= 2.4 "
                                     "plans) for the memory estimate")
    return float(activation_bytes(conv_unet_from_plan(architecture, inputs), rule.planned_patch, planned_batch,
                                  BYTES_FLOAT16))


def planned_stage_memory(trainer_class: type, plans_manager, configuration_manager, inputs: int, outputs: int,
                         rule, settings: ProgressiveSettings, where: str) -> PlannedStageMemory:
    planned_batch = int(configuration_manager.batch_size)
    activations = planned_activation_bytes(configuration_manager, rule, inputs, planned_batch)
    parameters = network_parameters(trainer_class, plans_manager, configuration_manager, inputs, outputs,
                                     rule.planned_patch)
    return PlannedStageMemory(activations, fixed_bytes(parameters, settings.optimizer), where)


def settings_for_schedule(settings: ProgressiveSettings, planned: PlannedStageMemory | None
                          ) -> tuple[ProgressiveSettings, float | None]:
    """The settings the schedule is built from: with NNPROG_MEMORY_TARGET the budget factor it gives (and the
    factor), else ``settings`` unchanged (and None). Raises where both budget knobs are set or the target is too
    small."""
    if settings.memory_target is None:
        return settings, None
    if planned is None:  # a caller that built no estimate: never a silently unread knob
        raise ProgressiveConfigError("NNPROG_MEMORY_TARGET is set but this schedule was built without the planned "
                                     "stage's memory estimate; build it through the trainer (schedule_of_new_run)")
    check_budget_knobs(settings.memory_target, settings.batch_budget, "NNPROG_BATCH_BUDGET" in settings.set_knobs())
    factor = memory_target_budget(planned, settings.memory_target)
    return settings.replace(batch_budget=factor), factor


def stage_estimate_bytes(planned: PlannedStageMemory, rule, planned_batch: int, patch, batch: int) -> float:
    """The estimate of a stage (its activations scaled from the planned stage's, plus the fixed part)."""
    planned_patch = tuple(rule.planned_patch)
    if rule.sample_cost is not None:
        relative = batch * rule.sample_cost(tuple(patch)) / (planned_batch * rule.sample_cost(planned_patch))
    else:
        relative = batch * math.prod(patch) / (planned_batch * math.prod(planned_patch))
    return planned.stage_bytes(relative)


class StagePeakCheck:
    """Per stage: the peak of its first iterations against the target (CUDA), logged once."""

    def __init__(self, target_gib: float, planned: PlannedStageMemory, text: str):
        self.target_gib = target_gib
        self.planned = planned
        self.text = text  # the rule applied (budget_text)
        self._stage: int | None = None
        self._steps = 0
        self._done: set[int] = set()

    @classmethod
    def of(cls, target_gib: float, planned: PlannedStageMemory, factor: float) -> StagePeakCheck:
        return cls(target_gib, planned, budget_text(planned, target_gib, factor))

    def start_lines(self, device: torch.device) -> list[str]:
        lines = [self.text]
        if device.type != "cuda":
            lines.append(f"Memory target applied through the estimate only: the peak cannot be measured on "
                         f"{device.type} (torch.cuda.max_memory_allocated needs a CUDA device)")
        return lines

    def epoch_start(self, stage_index: int, device: torch.device) -> None:
        if stage_index in self._done or stage_index == self._stage:
            return
        self._stage, self._steps = stage_index, 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def after_step(self, device: torch.device, stages: int, estimate: float, iterations_per_epoch: int) -> list[str]:
        """Log lines once the stage's first iterations are done (CUDA only); [] otherwise."""
        if device.type != "cuda" or self._stage is None or self._stage in self._done:
            return []
        self._steps += 1
        if self._steps < min(PEAK_ITERATIONS, iterations_per_epoch):
            return []
        self._done.add(self._stage)
        peak = float(torch.cuda.max_memory_allocated(device))
        return peak_lines(self._stage + 1, stages, peak, self.target_gib, estimate, self._steps)

