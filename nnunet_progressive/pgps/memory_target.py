"""PGPS Performance with a device-memory target (NNPROG_MEMORY_TARGET, GiB): the voxel budget that fits it. Pure.

The package's memory estimate of a training step has two parts:

- the activations kept for backward, proportional to batch x (memory of one sample): ``architectures/memory.py``
  for nnU-Net's U-Nets (linear in voxels), ``architectures/transformer_memory.py`` for UNETR, SwinUNETR and Primus
  (their ``sample_cost``); PGPS Performance keeps this part within its budget at every stage;
- a fixed part, the same at every stage: the fp32 weights, their gradients, the optimiser's state and, under fp16
  autocast, the fp16 copies of the weights autocast caches during a forward pass (:func:`fixed_bytes`). cuDNN
  workspaces and the allocator's fragmentation are not modelled (``workspace_bytes`` is 0 unless given); the
  trainer compares the measured peak of each stage with the target on CUDA.

The rule (:func:`memory_target_budget`)::

    budget factor = (target - fixed) / activations(planned stage)

i.e. the activation budget is what is left of the target once the fixed part is paid, as a multiple of the
planned stage's activations; it replaces NNPROG_BATCH_BUDGET's factor (the two are refused together). A factor
below 1 means the planned stage alone does not fit the target: a :class:`ProgressiveConfigError` at start.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_progressive.core.errors import ProgressiveConfigError

GIB = 2**30
WEIGHT_BYTES = 4  # fp32 weights (nnU-Net keeps them in fp32 under autocast) ...
GRADIENT_BYTES = 4  # ... and their fp32 gradients
AUTOCAST_COPY_BYTES = 2  # fp16 copies of the weights, cached by autocast for the forward and backward pass
OPTIMIZER_STATE_BYTES = {"sgd": 4, "lamb": 8}  # SGD's momentum buffer; LAMB's two moments (fp32 each)


@dataclass(frozen=True)
class PlannedStageMemory:
    """The estimate of the planned stage (planned patch and batch): ``activation_bytes`` (grows with batch and patch)
    and ``fixed_bytes`` (weights, gradients, optimiser state: the same at every stage); ``where`` names the run for
    messages (trainer, configuration)."""

    activation_bytes: float
    fixed_bytes: float
    where: str = "this run"

    def __post_init__(self) -> None:
        if not self.activation_bytes > 0:
            raise ValueError(f"the planned stage's activation estimate must be > 0, got {self.activation_bytes}")
        if self.fixed_bytes < 0:
            raise ValueError(f"the fixed part must be >= 0, got {self.fixed_bytes}")

    @property
    def total_bytes(self) -> float:
        return self.activation_bytes + self.fixed_bytes

    def stage_bytes(self, budget_factor: float) -> float:
        """The estimate of a stage whose activations are ``budget_factor`` times the planned stage's."""
        return self.fixed_bytes + budget_factor * self.activation_bytes


def fixed_bytes(parameters: int, optimizer: str = "sgd", mixed_precision: bool = True,
                workspace_bytes: float = 0.0) -> float:
    """The part of a training step's memory that does not grow with batch or patch: per parameter its fp32 weight
    and gradient, the optimiser's state (``sgd``: momentum; ``lamb``: two moments) and under fp16 autocast its
    cached fp16 copy; plus ``workspace_bytes``."""
    if parameters < 0:
        raise ValueError(f"parameters must be >= 0, got {parameters}")
    if optimizer not in OPTIMIZER_STATE_BYTES:
        raise ValueError(f"no optimiser state size for {optimizer!r}; known: {tuple(OPTIMIZER_STATE_BYTES)}")
    per_parameter = WEIGHT_BYTES + GRADIENT_BYTES + OPTIMIZER_STATE_BYTES[optimizer]
    per_parameter += AUTOCAST_COPY_BYTES if mixed_precision else 0
    return float(parameters * per_parameter + workspace_bytes)


def gib(size_bytes: float) -> str:
    return f"{size_bytes / GIB:.2f} GiB"


def memory_target_budget(planned: PlannedStageMemory, target_gib: float) -> float:
    """Performance's budget factor (a multiple of the planned stage's activations) that fits ``target_gib``.

    ``(target - fixed) / activations(planned)``; raises :class:`ProgressiveConfigError` where the planned stage alone
    (factor < 1) does not fit: what, where, and the fixes (a larger target, or Efficiency mode).
    """
    if not target_gib > 0:
        raise ProgressiveConfigError(f"NNPROG_MEMORY_TARGET must be > 0 GiB, got {target_gib}")
    target = target_gib * GIB
    factor = (target - planned.fixed_bytes) / planned.activation_bytes
    if factor < 1.0:
        raise ProgressiveConfigError(
            f"NNPROG_MEMORY_TARGET={target_gib:g} GiB is too small for {planned.where}: the planned stage alone is "
            f"estimated at {gib(planned.total_bytes)} (activations {gib(planned.activation_bytes)} + weights, "
            f"gradients and optimiser state {gib(planned.fixed_bytes)}); set NNPROG_MEMORY_TARGET to at least "
            f"{planned.total_bytes / GIB:.2f}, or train in Efficiency mode (nnUNetTrainer_PGPS_Efficiency: the "
            f"planned batch at every stage), or unset NNPROG_MEMORY_TARGET")
    return factor


def check_budget_knobs(memory_target: float | None, batch_budget: float, batch_budget_set: bool) -> None:
    """NNPROG_MEMORY_TARGET and NNPROG_BATCH_BUDGET both size Performance's budget: one of them, never both."""
    if memory_target is not None and batch_budget_set:
        raise ProgressiveConfigError(
            f"NNPROG_MEMORY_TARGET={memory_target:g} and NNPROG_BATCH_BUDGET={batch_budget:g} are both set; both size "
            f"Performance's voxel budget (a device-memory target in GiB, or a multiple of the planned footprint): "
            f"unset one of them")


def budget_text(planned: PlannedStageMemory, target_gib: float, factor: float) -> str:
    """The start-up log line of the rule applied."""
    return (f"Memory target {target_gib:g} GiB: planned stage estimated at {gib(planned.total_bytes)} (activations "
            f"{gib(planned.activation_bytes)} + fixed {gib(planned.fixed_bytes)}); voxel budget {factor:.3f} x the "
            f"planned footprint = (target - fixed) / planned activations")


PEAK_TOLERANCE = 0.10  # a measured peak more than 10% above the target is warned about


def peak_lines(stage: int, stages: int, peak_bytes: float, target_gib: float, estimate_bytes: float,
               iterations: int) -> list[str]:
    """Log lines comparing a stage's measured peak (``torch.cuda.max_memory_allocated`` over its first
    ``iterations``) with the target and the estimate; a warning line where it exceeds the target by more than 10%."""
    target = target_gib * GIB
    lines = [f"Memory target: stage {stage}/{stages} peak {gib(peak_bytes)} over its first {iterations} iteration"
             f"{'s' if iterations != 1 else ''}: {100 * peak_bytes / target:.0f}% of the target {target_gib:g} GiB, "
             f"{100 * peak_bytes / estimate_bytes:.0f}% of the estimate {gib(estimate_bytes)}"]
    if peak_bytes > (1 + PEAK_TOLERANCE) * target:
        lines.append(f"WARNING: stage {stage}/{stages} peaked at {gib(peak_bytes)}, more than 10% above "
                     f"NNPROG_MEMORY_TARGET={target_gib:g} GiB: the memory estimate undercounts on this device; "
                     f"lower NNPROG_MEMORY_TARGET or set NNPROG_MAX_BATCH (the run goes on)")
    return lines
