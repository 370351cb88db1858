"""The PGPS stage schedule: a pure function of the plan and the knobs.

Patches grow from the smallest size the planned network can train on to the planned size, one axis
at a time by that axis' step. Epochs are split over the stages; the last stage always uses the planned
patch. Nothing here touches nnU-Net, torch or the file system.

One rule for every network: an axis' step is the least common multiple of its total pooling stride (the
plan's U-Net) and the network's own input multiple (a transformer's token or window rule, see
``nnunet_progressive.architectures``); "strides" below means that combined per-axis step.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import BATCH_SAMPLINGS, GROWTH_ORDERS, ProgressiveSettings

MODES = ("efficiency", "performance")
# GROWTH_ORDERS: which axis grows next (see ``patch_sequence``); BATCH_SAMPLINGS: how a Performance batch is
# drawn, "volumes" (the 2025 code: the planned number of cases, several crops from each) or "cases" (every crop
# from its own case, as nnU-Net's loader draws a batch). Both are knob choices, defined in core/knobs.py.


@dataclass(frozen=True)
class Stage:
    """One stage of the curriculum.

    ``first_epoch`` is inclusive, ``last_epoch`` exclusive; ``batch_size`` is the GLOBAL batch (what the
    plans call batch_size), split over DDP ranks by the trainer.
    """

    index: int
    patch_size: tuple[int, ...]
    batch_size: int
    first_epoch: int
    last_epoch: int

    @property
    def num_epochs(self) -> int:
        return self.last_epoch - self.first_epoch

    @property
    def patch_voxels(self) -> int:
        return math.prod(self.patch_size)

    @property
    def voxels_per_iteration(self) -> int:
        return self.patch_voxels * self.batch_size


@dataclass(frozen=True)
class Schedule:
    """All stages of a run plus what they were computed from."""

    stages: tuple[Stage, ...]
    planned_patch_size: tuple[int, ...]
    planned_batch_size: int
    num_epochs: int

    def stage_at_epoch(self, epoch: int) -> Stage:
        """The stage that trains epoch ``epoch`` (0-based). Epochs past the end use the last stage."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        for stage in self.stages:
            if epoch < stage.last_epoch:
                return stage
        return self.stages[-1]

    def relative_compute(self) -> float:
        """Voxels processed over the run relative to constant planned patch and batch (1.0 = same).

        This is the ideal train-time ratio if time were proportional to voxels per iteration.
        """
        return self.relative_time({stage.index: stage.voxels_per_iteration for stage in self.stages},
                                  self.planned_batch_size * math.prod(self.planned_patch_size))

    def relative_time(self, seconds_per_iteration: Mapping[int, float], planned_seconds: float) -> float:
        """The run's training time relative to constant planned patch and batch, from measured step times.

        ``seconds_per_iteration``: stage index -> seconds one iteration of that stage takes; ``planned_seconds``:
        one iteration at the planned patch and batch. :meth:`relative_compute` is this ratio when time is
        proportional to voxels; measured times show what a device makes of small patches (fixed costs per step).
        """
        missing = [stage.index for stage in self.stages if stage.index not in seconds_per_iteration]
        if missing:
            raise ValueError(f"no step time for stage(s) {missing}")
        if planned_seconds <= 0:
            raise ValueError(f"planned_seconds must be > 0, got {planned_seconds}")
        used = sum(float(seconds_per_iteration[stage.index]) * stage.num_epochs for stage in self.stages)
        return used / (planned_seconds * self.num_epochs)

    def to_dict(self) -> dict:
        return {
            "planned_patch_size": list(self.planned_patch_size),
            "planned_batch_size": self.planned_batch_size,
            "num_epochs": self.num_epochs,
            "relative_compute": self.relative_compute(),
            "stages": [
                {**asdict(stage), "patch_size": list(stage.patch_size), "num_epochs": stage.num_epochs}
                for stage in self.stages
            ],
        }


def total_strides(pool_op_kernel_sizes: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """Per-axis product of the pooling strides of all encoder stages (the first entry is usually 1s)."""
    if len(pool_op_kernel_sizes) == 0:
        raise ProgressiveConfigError("the plan has no pooling strides (arch_kwargs 'strides' is empty)")
    dims = {len(s) for s in pool_op_kernel_sizes}
    if len(dims) != 1:
        raise ProgressiveConfigError(f"pooling strides have inconsistent dimensions: {pool_op_kernel_sizes}")
    return tuple(math.prod(int(s[axis]) for s in pool_op_kernel_sizes) for axis in range(dims.pop()))


def network_strides(
    pool_op_kernel_sizes: Sequence[Sequence[int]] | None, input_multiple: Sequence[int] | None = None
) -> tuple[int, ...]:
    """Per-axis step every patch axis must be a multiple of: lcm(total pooling stride, input multiple).

    ``pool_op_kernel_sizes=None``: the network has no nnU-Net pooling (a transformer), only ``input_multiple``.
    """
    if pool_op_kernel_sizes is None and input_multiple is None:
        raise ProgressiveConfigError("need the pooling strides or the network's input multiple (both are None)")
    if pool_op_kernel_sizes is None:
        pooled = (1,) * len(input_multiple)
    else:
        pooled = total_strides(pool_op_kernel_sizes)
    if input_multiple is None:
        return pooled
    if len(input_multiple) != len(pooled) or any(int(m) < 1 for m in input_multiple):
        raise ProgressiveConfigError(
            f"the network's input multiple {tuple(input_multiple)} needs one positive entry per axis of the "
            f"pooling strides {pooled}")
    return tuple(math.lcm(int(s), int(m)) for s, m in zip(pooled, input_multiple, strict=True))


def _check_multiple(patch: Sequence[int], strides: Sequence[int], what: str) -> None:
    bad = [axis for axis, (p, s) in enumerate(zip(patch, strides, strict=True)) if p % s != 0 or p < s]
    if bad:
        raise ProgressiveConfigError(
            f"{what} {tuple(patch)} is not a positive multiple of the network's total stride "
            f"{tuple(strides)} (pooling strides, and the architecture's own input rule) on axes {bad}: the "
            f"network cannot take it. Use sizes that are multiples of {tuple(strides)}."
        )


def smallest_patch(planned_patch: Sequence[int], strides: Sequence[int]) -> tuple[int, ...]:
    """The smallest patch the planned network trains on.

    Each axis is one total stride (a bottleneck of one voxel on that axis), except one axis that gets
    two, so the bottleneck holds more than one voxel (instance norm needs at least two values). That
    axis is the one with the largest planned bottleneck extent (ties: the first), so it never exceeds
    the plan. If the plan's bottleneck is a single voxel, the planned patch is the only valid one.
    """
    if len(planned_patch) != len(strides):
        raise ProgressiveConfigError(
            f"planned patch {tuple(planned_patch)} has {len(planned_patch)} axes but the pooling strides "
            f"{tuple(strides)} have {len(strides)}"
        )
    _check_multiple(planned_patch, strides, "the planned patch size")
    bottleneck = [p // s for p, s in zip(planned_patch, strides, strict=True)]
    if math.prod(bottleneck) <= 1:
        return tuple(int(p) for p in planned_patch)
    grow_axis = max(range(len(bottleneck)), key=lambda a: (bottleneck[a], -a))
    return tuple(int(s) * (2 if axis == grow_axis else 1) for axis, s in enumerate(strides))


def validate_min_patch(min_patch: Sequence[int], planned_patch: Sequence[int], strides: Sequence[int]) -> None:
    """Raise if a user-chosen smallest patch cannot be trained by the planned network."""
    if len(min_patch) != len(planned_patch):
        raise ProgressiveConfigError(
            f"the smallest patch {tuple(min_patch)} has {len(min_patch)} axes but the planned patch "
            f"{tuple(planned_patch)} has {len(planned_patch)}"
        )
    _check_multiple(min_patch, strides, "the smallest patch")
    too_big = [a for a, (m, p) in enumerate(zip(min_patch, planned_patch, strict=True)) if m > p]
    if too_big:
        raise ProgressiveConfigError(
            f"the smallest patch {tuple(min_patch)} exceeds the planned patch {tuple(planned_patch)} on axes "
            f"{too_big}; choose sizes <= the planned patch"
        )
    if math.prod(m // s for m, s in zip(min_patch, strides, strict=True)) <= 1 and tuple(min_patch) != tuple(
        planned_patch
    ):
        raise ProgressiveConfigError(
            f"the smallest patch {tuple(min_patch)} gives a 1-voxel bottleneck with strides {tuple(strides)}; "
            f"instance norm cannot train on it. Double one axis, e.g. {smallest_patch(planned_patch, strides)}"
        )


def patch_sequence(
    planned_patch: Sequence[int],
    strides: Sequence[int],
    min_patch: Sequence[int] | None = None,
    order: str = "ratio",
) -> list[tuple[int, ...]]:
    """Patch sizes of all stages, smallest first, the planned patch last.

    One axis grows by its stride per stage (clipped at the planned size). Which one (``order``):

    - ``"ratio"`` (default): the axis furthest behind its planned size (smallest current/planned ratio; ties:
      the smaller absolute size, then the lower axis index), so the patch approaches the planned aspect ratio
      on anisotropic plans;
    - ``"smallest"`` (the published 2025 code): the axis whose grown size would be smallest (ties: the lower
      axis index), so short axes fill up first;
    - ``"round_robin"`` (the published 2024 code): the axes in turn, starting at axis 1, skipping full ones.

    Number of stages (any order): 1 + sum over axes of ceil((planned - min) / stride).
    """
    if order not in GROWTH_ORDERS:
        raise ProgressiveConfigError(f"unknown growth order {order!r}; expected one of {GROWTH_ORDERS}")
    planned = tuple(int(p) for p in planned_patch)
    strides = tuple(int(s) for s in strides)
    if min_patch is None:
        current = list(smallest_patch(planned, strides))
    else:
        validate_min_patch(min_patch, planned, strides)
        current = [int(m) for m in min_patch]
    sequence = [tuple(current)]
    turn = 1
    while tuple(current) != planned:
        growable = [a for a in range(len(planned)) if current[a] < planned[a]]
        if order == "ratio":
            axis = min(growable, key=lambda a: (current[a] / planned[a], current[a], a))
        elif order == "smallest":
            axis = min(growable, key=lambda a: (min(current[a] + strides[a], planned[a]), a))
        else:
            axis = min(growable, key=lambda a: ((a - turn) % len(planned), a))
            turn = axis + 1
        current[axis] = min(current[axis] + strides[axis], planned[axis])
        sequence.append(tuple(current))
    return sequence


def split_epochs(num_epochs: int, num_stages: int, growth_share: float | None = None) -> list[int]:
    """Epochs per stage.

    ``growth_share=None`` (the published trainers): every stage gets ``num_epochs // num_stages`` and the
    last (planned-patch) stage also takes the remainder. Otherwise the growing stages share
    ``round(growth_share * num_epochs)`` epochs as evenly as possible (earlier stages get the extra one)
    and the last stage gets the rest. Every stage gets at least one epoch.
    """
    if num_epochs < 1:
        raise ProgressiveConfigError(f"the number of epochs must be >= 1, got {num_epochs}")
    if num_epochs < num_stages:
        raise ProgressiveConfigError(
            f"{num_epochs} epochs cannot cover {num_stages} patch-size stages (each needs at least one "
            f"epoch). Train for at least {num_stages} epochs (NNPROG_EPOCHS) or start from a larger "
            f"smallest patch (NNPROG_MIN_PATCH)."
        )
    if num_stages == 1:
        return [num_epochs]
    if growth_share is None:
        per_stage = num_epochs // num_stages
        return [per_stage] * (num_stages - 1) + [num_epochs - per_stage * (num_stages - 1)]
    if not 0.0 < growth_share < 1.0:
        raise ProgressiveConfigError(
            f"the growth share must lie strictly between 0 and 1 (share of epochs spent on the growing "
            f"stages), got {growth_share}"
        )
    growing_epochs = round(growth_share * num_epochs)
    growing_stages = num_stages - 1
    if growing_epochs < growing_stages or num_epochs - growing_epochs < 1:
        raise ProgressiveConfigError(
            f"a growth share of {growth_share} of {num_epochs} epochs gives {growing_epochs} epochs for "
            f"{growing_stages} growing stages plus at least one final epoch; raise the epochs or adjust "
            f"the share (NNPROG_GROWTH_SHARE)"
        )
    base, extra = divmod(growing_epochs, growing_stages)
    growing = [base + (1 if i < extra else 0) for i in range(growing_stages)]
    return growing + [num_epochs - growing_epochs]


def performance_batch_sizes(
    patches: Sequence[Sequence[int]],
    planned_batch: int,
    voxel_budget: int | None = None,
    max_batch: int | None = None,
    sample_cost: Callable[[tuple[int, ...]], float] | None = None,
) -> list[int]:
    """Batch per stage so batch x patch voxels stays within the voxel budget (the planned footprint).

    ``batch_k = floor(voxel_budget / voxels(p_k))`` clipped to ``[planned_batch, max_batch]``, where
    ``voxel_budget`` defaults to ``planned_batch * voxels(planned patch)`` (the planned memory footprint: the
    activations nnU-Net's convolutional networks keep are proportional to the voxels of a batch). The planned batch
    is the floor even if the budget is smaller; ``max_batch`` is a safety cap, off by default.

    ``sample_cost(patch)``: memory of one sample where it is not proportional to voxels (transformers:
    attention grows with the square of the tokens). A stage's sample then counts as
    ``voxels(planned) * sample_cost(p_k) / sample_cost(planned)`` voxels, so the planned stage is unchanged and
    the budget bounds the estimated memory instead of the voxels.
    """
    if planned_batch < 1:
        raise ProgressiveConfigError(f"the planned batch size must be >= 1, got {planned_batch}")
    if max_batch is not None and max_batch < planned_batch:
        raise ProgressiveConfigError(
            f"the batch cap {max_batch} (NNPROG_MAX_BATCH) is below the planned batch size {planned_batch}; "
            f"the Performance mode never trains below the planned batch"
        )
    budget = voxel_budget if voxel_budget is not None else planned_batch * math.prod(patches[-1])
    if budget < 1:
        raise ProgressiveConfigError(f"the voxel budget must be positive, got {budget}")
    planned_voxels = math.prod(patches[-1])
    planned_cost = sample_cost(tuple(patches[-1])) if sample_cost is not None else None
    sizes = []
    for patch in patches:
        if sample_cost is None:
            sample_voxels: float = math.prod(patch)
        else:
            sample_voxels = planned_voxels * sample_cost(tuple(patch)) / planned_cost
        batch = max(planned_batch, math.floor(budget / sample_voxels))
        if max_batch is not None:
            batch = min(batch, max_batch)
        sizes.append(int(batch))
    return sizes


def build_schedule(
    planned_patch: Sequence[int],
    pool_op_kernel_sizes: Sequence[Sequence[int]],
    planned_batch: int,
    num_epochs: int,
    mode: str = "efficiency",
    min_patch: Sequence[int] | None = None,
    growth_share: float | None = None,
    max_batch: int | None = None,
    batch_budget_factor: float = 1.0,
    growth_order: str = "ratio",
    input_multiple: Sequence[int] | None = None,
    sample_cost: Callable[[tuple[int, ...]], float] | None = None,
) -> Schedule:
    """The full PGPS schedule.

    Args:
        planned_patch: the plan's patch size, nnU-Net axis order (2 or 3 entries).
        pool_op_kernel_sizes: the plan's per-stage pooling strides (``arch_kwargs['strides']``); None for a
            network without nnU-Net pooling (then ``input_multiple`` is required).
        planned_batch: the plan's (global) batch size.
        num_epochs: total epochs of the run.
        mode: "efficiency" (constant batch) or "performance" (batch grows while patches are small).
        min_patch: smallest patch; default: the smallest the network accepts (see ``smallest_patch``).
        growth_share: share of epochs spent before the planned patch; default: even split per stage.
        max_batch: hard batch cap for performance mode (None: no cap beyond the voxel budget).
        batch_budget_factor: performance mode's voxel budget as a multiple of the planned footprint.
        growth_order: which axis grows next (see ``patch_sequence``).
        input_multiple: the network's own per-axis input rule (e.g. 32 per axis for SwinUNETR); steps and the
            smallest patch respect it together with the pooling strides.
        sample_cost: relative memory of one sample at a patch, for networks whose memory is not linear in
            voxels (see ``performance_batch_sizes``); None: voxels.
    """
    if mode not in MODES:
        raise ProgressiveConfigError(f"unknown PGPS mode {mode!r}; expected one of {MODES}")
    if len(planned_patch) not in (2, 3):
        raise ProgressiveConfigError(f"PGPS needs a 2D or 3D patch, got {tuple(planned_patch)}")
    if batch_budget_factor <= 0:
        raise ProgressiveConfigError(f"the batch budget factor must be > 0, got {batch_budget_factor}")
    strides = network_strides(pool_op_kernel_sizes, input_multiple)
    patches = patch_sequence(planned_patch, strides, min_patch, growth_order)
    epochs = split_epochs(num_epochs, len(patches), growth_share)
    if mode == "efficiency":
        batches = [int(planned_batch)] * len(patches)
    else:
        budget = int(batch_budget_factor * planned_batch * math.prod(planned_patch))
        batches = performance_batch_sizes(patches, planned_batch, budget, max_batch, sample_cost)
    stages = []
    first = 0
    for index, (patch, batch, n) in enumerate(zip(patches, batches, epochs, strict=True)):
        stages.append(Stage(index, patch, batch, first, first + n))
        first += n
    return Schedule(tuple(stages), tuple(int(p) for p in planned_patch), int(planned_batch), int(num_epochs))


def random_patch_pool(
    planned_patch: Sequence[int],
    pool_op_kernel_sizes: Sequence[Sequence[int]] | None,
    min_patch: Sequence[int] | None = None,
    growth_order: str = "ratio",
    input_multiple: Sequence[int] | None = None,
) -> list[tuple[int, ...]]:
    """The patch sizes RPSS draws from (uniformly, one per iteration): the PGPS stage sizes."""
    return patch_sequence(planned_patch, network_strides(pool_op_kernel_sizes, input_multiple), min_patch,
                          growth_order)


def forced_volumes(volumes: int, percent: float) -> int:
    """How many of ``volumes`` nnU-Net's positional rule forces to contain foreground (the last ones).

    nnU-Net's loader forces sample j of a batch of b iff ``j >= round(b * (1 - percent))``: 0.33 at batch 2
    forces one of two (a share of 1/2), at batch 1 none.
    """
    return volumes - round(volumes * (1 - percent))


def rank_volume_range(planned_batch: int, world_size: int = 1, rank: int = 0) -> tuple[int, int]:
    """The planned cases ``[first, last)`` of a batch that DDP rank ``rank`` draws (nnU-Net's split: the
    first ``planned_batch % world_size`` ranks get one more)."""
    if not 0 <= rank < world_size or planned_batch < world_size:
        raise ProgressiveConfigError(
            f"a planned batch of {planned_batch} cannot be split over {world_size} GPUs (rank {rank}); nnU-Net "
            f"needs at least one case per GPU")
    sizes = [planned_batch // world_size + (1 if i < planned_batch % world_size else 0) for i in range(world_size)]
    first = sum(sizes[:rank])
    return first, first + sizes[rank]


def ddp_stage_batch(stage_batch: int, planned_batch: int, world_size: int = 1) -> int:
    """The global batch a stage trains under DDP: ``stage_batch`` rounded down to a multiple of ``world_size``,
    so every rank trains the same number of samples (nnU-Net's Dice loss with ``batch_dice`` gathers per-sample
    terms over ranks and needs equal batches). Never below the planned batch, which stays nnU-Net's own split."""
    if world_size < 1 or stage_batch < planned_batch:
        raise ValueError(f"stage batch {stage_batch} (planned {planned_batch}) over {world_size} GPUs")
    return max(planned_batch, stage_batch - stage_batch % world_size)


@dataclass(frozen=True)
class BatchLayout:
    """How one rank draws a training batch: one group of crops per planned case.

    ``crops[v]`` crops come from group v. With ``distinct_cases`` False (the published 2025 batching) a group is
    ONE case, loaded once and cropped ``crops[v]`` times; with True every crop comes from its own case (nnU-Net's
    way of drawing a batch). Foreground: the last ``forced[v]`` crops of group v are forced to contain
    foreground; if ``forced`` is None (the plan asked for probabilistic oversampling) each group is forced as a
    whole with probability ``probability``. Crops are stored group by group.
    """

    crops: tuple[int, ...]
    forced: tuple[int, ...] | None
    probability: float = 0.0
    distinct_cases: bool = False

    def __post_init__(self) -> None:
        if not self.crops or min(self.crops) < 1:
            raise ValueError(f"a batch needs >= 1 group and >= 1 crop per group, got {self.crops}")
        if self.forced is not None and (len(self.forced) != len(self.crops) or any(
                not 0 <= f <= c for f, c in zip(self.forced, self.crops))):
            raise ValueError(f"forced crops {self.forced} do not fit the crops per group {self.crops}")

    @property
    def volumes(self) -> int:
        return len(self.crops)

    @property
    def batch_size(self) -> int:
        return sum(self.crops)

    @property
    def cases_per_batch(self) -> int:
        return self.batch_size if self.distinct_cases else self.volumes

    @property
    def foreground_share(self) -> float:
        """Expected share of foreground-forced crops in a batch."""
        if self.forced is None:
            return self.probability
        return sum(self.forced) / self.batch_size

    def groups(self) -> tuple[int, ...]:
        """The group of every crop of the batch, in order."""
        return tuple(group for group, count in enumerate(self.crops) for _ in range(count))

    def forced_crops(self, uniform: Sequence[float]) -> tuple[bool, ...]:
        """Per crop: forced to contain foreground? ``uniform``: one U[0, 1) draw per group (used only for
        probabilistic oversampling)."""
        if self.forced is None:
            return tuple(float(uniform[group]) < self.probability for group in self.groups())
        return tuple(i >= count - forced for count, forced in zip(self.crops, self.forced) for i in range(count))


def batch_layout(
    stage_batch: int,
    planned_batch: int,
    planned_percent: float,
    probabilistic: bool = False,
    sampling: str = "volumes",
    world_size: int = 1,
    rank: int = 0,
) -> BatchLayout:
    """The batch layout of one DDP rank at a stage.

    The global batch of ``stage_batch`` crops comes from the ``planned_batch`` cases of the plan: each gives
    ``ceil`` or ``floor(stage_batch / planned_batch)`` crops (the first ``stage_batch % planned_batch`` one more).
    Under DDP each rank takes ``stage_batch / world_size`` crops (the first ranks one more where it does not
    divide: :func:`ddp_stage_batch` avoids that) over its cases, so the ranks' batches differ by at most one.
    The planned foreground share is what nnU-Net's positional rule gives at the planned batch
    (``forced_volumes``); the last ``round(stage_batch x share)`` crops of the global batch are forced, so whole
    cases alternate between forced and random where the numbers divide (0.33 at batch 2: one random case, one
    forced case). Each rank takes its cases (nnU-Net's DDP split of the planned batch).

    Args:
        stage_batch: the stage's global batch (>= ``planned_batch``).
        planned_batch: the plan's global batch: the number of cases per batch over all ranks.
        planned_percent: the plan's ``oversample_foreground_percent``.
        probabilistic: the plan's ``probabilistic_oversampling`` (then each case is forced with that probability).
        sampling: "volumes" (crops of the same case) or "cases" (every crop its own case).
        world_size, rank: DDP.
    """
    if sampling not in BATCH_SAMPLINGS:
        raise ProgressiveConfigError(f"unknown batch sampling {sampling!r}; expected one of {BATCH_SAMPLINGS}")
    if stage_batch < planned_batch:
        raise ValueError(f"the stage batch {stage_batch} is below the planned batch {planned_batch}")
    crops = []  # per planned case, rank by rank: every rank's crops as even as the stage batch allows
    for r in range(world_size):
        rank_first, rank_last = rank_volume_range(planned_batch, world_size, r)
        rank_crops = stage_batch // world_size + (1 if r < stage_batch % world_size else 0)
        base, extra = divmod(rank_crops, rank_last - rank_first)
        crops += [base + (1 if v < extra else 0) for v in range(rank_last - rank_first)]
    first, last = rank_volume_range(planned_batch, world_size, rank)
    forced = None
    if not probabilistic:
        share = forced_volumes(planned_batch, planned_percent) / planned_batch
        first_forced = stage_batch - math.floor(stage_batch * share + 0.5)
        starts = [sum(crops[:v]) for v in range(planned_batch)]
        forced = tuple(max(0, starts[v] + crops[v] - max(first_forced, starts[v])) for v in range(first, last))
    return BatchLayout(tuple(crops[first:last]), forced, planned_percent if probabilistic else 0.0,
                       sampling == "cases")


LEGACY_PERFORMANCE_MAX_BATCH = 64  # the default batch cap of versions before 0.2.0


def settings_of_version(settings: ProgressiveSettings, stored: Mapping[str, Any], package_version: str | None,
                        performance: bool, planned_batch: int) -> tuple[ProgressiveSettings, list[str]]:
    """The PGPS settings a run trains with when its record (``stored``, the settings dict it was started with)
    comes from a version before the published batching.

    Such records lack ``batch_sampling`` (added with ``augmentation`` and the end of the default cap, 0.2.0): an
    unset ``NNPROG_MAX_BATCH`` then capped the Performance batch at 64 (at least the planned batch), every crop of a
    Performance batch came from its own case, and the smaller patches got nnU-Net's per-patch augmentation rule.
    Only keys missing from the record are restored; returns the settings and one note per value restored.
    """
    if "batch_sampling" in stored:
        return settings, []
    changes: dict[str, Any] = {}
    if "augmentation" not in stored:
        changes["augmentation"] = "per_patch"
    if performance:
        changes["batch_sampling"] = "cases"
        if stored.get("max_batch") is None:
            changes["max_batch"] = max(LEGACY_PERFORMANCE_MAX_BATCH, planned_batch)
    notes = [f"Run of nnunet-progressive {package_version or '(unknown version)'}: {k} {v!r} (that version's "
             f"behaviour) is kept" for k, v in changes.items() if getattr(settings, k) != v]
    return settings.replace(**changes), notes
