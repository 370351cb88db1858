"""The published PGPS batching variants and crop placements: pure functions (numpy only, no nnU-Net, no torch).

The published 2025 code (StefanFischer/nnUNet-ProgressiveGrowingOfPatchSize, read at the commits named in
docs/pgps_variants.md) has, beside its default Performance batching (the planned number of cases, ``ceil(b / B0)``
crops from each: :func:`nnunet_progressive.pgps.schedule.batch_layout`), these trainers:

- ``_Performance_SQRT``: ``ceil(sqrt(b))`` crops from each loaded case (:func:`rule_crops`, ``sqrt``);
- ``_Performance_SingleVolume``: every crop of a batch from ONE case (``single_volume``);
- ``_Performance_GridSampler``: the random (not foreground-forced) crops of a case at jittered cells of a regular
  grid over the case (:func:`grid_crop_starts`);
- ``_Performance_PoissonDisk``: the random crops at Poisson-disk positions, at least about half a patch apart
  (:func:`poisson_disk_crop_starts`);
- ``nnUNetTrainer_SpatialJitterV2``: a foreground-centred crop shifted, with probability 1/2, by up to a quarter
  of the network patch per axis (:func:`jittered_start`).

Here they are knob values of the PGPS loaders (``NNPROG_BATCH_SAMPLING``, ``NNPROG_RANDOM_CROPS``,
``NNPROG_FOREGROUND_JITTER``), with nnU-Net's own crop bounds (padding included) and the plan's foreground share.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import RANDOM_CROP_PLACEMENTS
from nnunet_progressive.pgps.schedule import BatchLayout, forced_volumes, rank_volume_range

# samplings whose crops per case follow a rule of their own (not the planned number of cases)
RULE_SAMPLINGS = ("sqrt", "single_volume")
# the published SpatialJitterV2 shifts a foreground-centred crop in half of the draws
JITTER_PROBABILITY = 0.5


def rule_crops(crops: int, sampling: str) -> tuple[int, ...]:
    """Crops per loaded case for a batch of ``crops`` under a rule sampling.

    ``sqrt`` (the published ``_Performance_SQRT``): every case gives ``ceil(sqrt(crops))`` crops, the last case the
    rest, so ``ceil(crops / ceil(sqrt(crops)))`` cases are loaded (64 crops: 8 cases x 8; 10 crops: 4+4+2).
    ``single_volume`` (``_Performance_SingleVolume``): all crops from one case.
    """
    if crops < 1:
        raise ValueError(f"a batch needs >= 1 crop, got {crops}")
    if sampling == "single_volume":
        return (crops,)
    if sampling != "sqrt":
        raise ProgressiveConfigError(f"{sampling!r} is not a rule sampling; expected one of {RULE_SAMPLINGS}")
    per_case = math.ceil(math.sqrt(crops))
    full, rest = divmod(crops, per_case)
    return (per_case,) * full + ((rest,) if rest else ())


def rule_layout(stage_batch: int, planned_batch: int, planned_percent: float, probabilistic: bool, sampling: str,
                world_size: int = 1, rank: int = 0) -> BatchLayout:
    """The batch layout of one DDP rank under a rule sampling (``sqrt``, ``single_volume``).

    The rank's crops (``stage_batch`` split over the ranks as ``batch_layout`` splits it) are grouped by
    :func:`rule_crops`; the plan's foreground share (nnU-Net's positional rule at the planned batch) forces the last
    ``round(crops x share)`` crops of the rank's batch, so whole cases alternate between forced and random where the
    numbers divide; a plan with probabilistic oversampling forces each case with its probability.
    """
    if sampling not in RULE_SAMPLINGS:
        raise ProgressiveConfigError(f"{sampling!r} is not a rule sampling; expected one of {RULE_SAMPLINGS}")
    if stage_batch < planned_batch:
        raise ValueError(f"the stage batch {stage_batch} is below the planned batch {planned_batch}")
    rank_volume_range(planned_batch, world_size, rank)  # the same check of the DDP split as the default sampling
    rank_crops = stage_batch // world_size + (1 if rank < stage_batch % world_size else 0)
    crops = rule_crops(rank_crops, sampling)
    if probabilistic:
        return BatchLayout(crops, None, planned_percent)
    share = forced_volumes(planned_batch, planned_percent) / planned_batch
    return BatchLayout(crops, last_crops_forced(crops, math.floor(rank_crops * share + 0.5)))


def last_crops_forced(crops: Sequence[int], forced: int) -> tuple[int, ...]:
    """Per group: how many of its crops fall among the last ``forced`` crops of the batch (groups in order)."""
    total = sum(crops)
    if not 0 <= forced <= total:
        raise ValueError(f"cannot force {forced} of {total} crops")
    first_forced = total - forced
    result, start = [], 0
    for count in crops:
        result.append(max(0, start + count - max(first_forced, start)))
        start += count
    return tuple(result)


def crop_start_bounds(data_shape: Sequence[int], patch_size: Sequence[int], need_to_pad: Sequence[int]
                      ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The lowest and highest start of a crop per axis, as nnU-Net's ``nnUNetDataLoader.get_bbox`` computes them
    (the crop may reach half of ``need_to_pad`` beyond the image; a short axis is padded to the patch)."""
    pad = [int(n) for n in need_to_pad]
    for axis, (shape, patch) in enumerate(zip(data_shape, patch_size, strict=True)):
        if pad[axis] + int(shape) < int(patch):
            pad[axis] = int(patch) - int(shape)
    lower = tuple(-p // 2 for p in pad)
    upper = tuple(int(s) + p // 2 + p % 2 - int(c) for s, p, c in zip(data_shape, pad, patch_size, strict=True))
    return lower, upper


def grid_shape(count: int, dims: int) -> tuple[int, ...]:
    """Cells per axis of the published grid sampler: ``round(count ** (1 / dims))`` per axis, then the axis with
    the fewest cells gets one more until the grid has at least ``count`` cells."""
    if count < 1 or dims < 1:
        raise ValueError(f"need >= 1 crop and >= 1 axis, got {count} and {dims}")
    shape = [max(1, round(count ** (1 / dims)))] * dims
    while math.prod(shape) < count:
        shape[int(np.argmin(shape))] += 1
    return tuple(shape)


def grid_crop_starts(data_shape: Sequence[int], patch_size: Sequence[int], lower: Sequence[int],
                     upper: Sequence[int], count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Starts of ``count`` random crops of one case, spread as the published ``_Performance_GridSampler`` spreads them.

    The case is split into a regular grid (:func:`grid_shape`); each cell gets a centre drawn uniformly inside it,
    ``count`` cells are kept (drawn without replacement when the grid has more), and each crop is centred on its
    cell's point, its start clipped to ``[lower, upper]`` (nnU-Net's bounds: :func:`crop_start_bounds`; the published
    code clips to the image without padding).
    """
    dims = len(data_shape)
    cells = grid_shape(count, dims)
    edges = [np.linspace(0, int(data_shape[d]), cells[d] + 1) for d in range(dims)]
    index = np.stack([g.ravel() for g in np.meshgrid(*[np.arange(c) for c in cells], indexing="ij")], axis=-1)
    low = np.stack([edges[d][index[:, d]] for d in range(dims)], axis=-1)
    high = np.stack([edges[d][index[:, d] + 1] for d in range(dims)], axis=-1)
    centres = rng.uniform(low, high)
    if len(centres) > count:
        centres = centres[rng.choice(len(centres), size=count, replace=False)]
    return [_start_at(centre, patch_size, lower, upper) for centre in centres]


def poisson_disk_crop_starts(patch_size: Sequence[int], lower: Sequence[int], upper: Sequence[int], count: int,
                             rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Starts of ``count`` random crops of one case at Poisson-disk positions (the published ``_PoissonDisk``).

    Starts are drawn in ``[lower, upper]`` mapped to the unit cube by scipy's ``qmc.PoissonDisk`` with radius
    ``max_d(patch_d / 2 / span_d)`` (span: ``upper - lower``, at least 1), so neighbouring crops start about half a
    patch apart on the tightest axis. Where the case cannot hold ``count`` such positions, the published code stops
    training; here the remaining crops are drawn uniformly in the bounds (:func:`uniform_crop_starts`).
    """
    from scipy.stats import qmc

    dims = len(patch_size)
    span = np.maximum(np.asarray(upper, dtype=float) - np.asarray(lower, dtype=float), 1.0)
    radius = float(min(np.max(np.asarray(patch_size, dtype=float) / 2 / span), 1.0))
    engine = qmc.PoissonDisk(d=dims, radius=radius, rng=rng)
    points = engine.random(count)
    starts = [tuple(int(lower[d] + int(point[d] * (upper[d] - lower[d]))) for d in range(dims)) for point in points]
    return starts + uniform_crop_starts(lower, upper, count - len(starts), rng)


def uniform_crop_starts(lower: Sequence[int], upper: Sequence[int], count: int, rng: np.random.Generator
                        ) -> list[tuple[int, ...]]:
    """``count`` crop starts drawn uniformly in ``[lower, upper]`` (nnU-Net's random crop)."""
    return [tuple(int(rng.integers(lo, hi + 1)) for lo, hi in zip(lower, upper, strict=True)) for _ in range(count)]


def random_crop_starts(placement: str, data_shape: Sequence[int], patch_size: Sequence[int],
                       need_to_pad: Sequence[int], count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Starts of the ``count`` random crops of one case under ``placement`` (``NNPROG_RANDOM_CROPS``)."""
    if placement not in RANDOM_CROP_PLACEMENTS:
        raise ProgressiveConfigError(f"unknown random crop placement {placement!r}; expected one of "
                                     f"{RANDOM_CROP_PLACEMENTS}")
    lower, upper = crop_start_bounds(data_shape, patch_size, need_to_pad)
    if count < 1:
        return []
    if placement == "grid":
        return grid_crop_starts(data_shape, patch_size, lower, upper, count, rng)
    if placement == "poisson_disk":
        return poisson_disk_crop_starts(patch_size, lower, upper, count, rng)
    return uniform_crop_starts(lower, upper, count, rng)


def jittered_start(centred_start: Sequence[int], lower: Sequence[int], upper: Sequence[int],
                   network_patch: Sequence[int], share: float, rng: np.random.Generator) -> tuple[int, ...]:
    """A foreground-centred crop's start shifted as the published ``SpatialJitterV2`` shifts it.

    With probability 1/2 the crop moves by an integer drawn uniformly in ``[-m, m]`` per axis, ``m =
    floor(share x network patch)`` (the published value: a quarter), limited so the start stays within ``[lower,
    upper]`` (a start already beyond ``upper``, where nnU-Net pads, only moves back). ``share < 1/2`` keeps the
    chosen foreground voxel inside the network patch. ``share == 0`` returns the start unchanged (nnU-Net's crop).
    """
    if not 0.0 <= share < 0.5:
        raise ValueError(f"the jitter share must lie in [0, 0.5), got {share}")
    start = tuple(int(s) for s in centred_start)
    if share == 0.0 or rng.uniform() >= JITTER_PROBABILITY:
        return start
    shifted = []
    for s, lo, hi, patch in zip(start, lower, upper, network_patch, strict=True):
        most = math.floor(share * int(patch))
        low, high = max(-most, int(lo) - s), min(most, max(int(hi), s) - s)
        shifted.append(s + (int(rng.integers(low, high + 1)) if low <= high else 0))
    return tuple(shifted)


def _start_at(centre: Sequence[float], patch_size: Sequence[int], lower: Sequence[int], upper: Sequence[int]
              ) -> tuple[int, ...]:
    return tuple(int(np.clip(round(float(c) - int(p) / 2), lo, max(lo, hi)))
                 for c, p, lo, hi in zip(centre, patch_size, lower, upper, strict=True))


def stage_checkpoint_name(stage_index: int, patch_size: Sequence[int]) -> str:
    """File name of the checkpoint written at the end of a patch stage (``NNPROG_STAGE_CHECKPOINTS=on``), e.g.
    ``checkpoint_stage01_16x8x8.pth``; the published 2024 code names it ``checkpoint_16x8x8.pth``."""
    return f"checkpoint_stage{stage_index + 1:02d}_{'x'.join(str(int(p)) for p in patch_size)}.pth"
