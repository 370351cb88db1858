"""The published PGPS batching variants and crop placements (pgps/sampling.py): pure functions."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.sampling import (
    crop_start_bounds,
    grid_crop_starts,
    grid_shape,
    jittered_start,
    last_crops_forced,
    poisson_disk_crop_starts,
    random_crop_starts,
    rule_crops,
    rule_layout,
    stage_checkpoint_name,
)


@pytest.mark.parametrize(("crops", "expected"), [
    (64, (8,) * 8), (10, (4, 4, 2)), (2, (2,)), (1, (1,)), (9, (3, 3, 3)), (17, (5, 5, 5, 2))])
def test_sqrt_takes_ceil_sqrt_crops_per_case(crops, expected):
    assert rule_crops(crops, "sqrt") == expected
    assert sum(expected) == crops and len(expected) == math.ceil(crops / math.ceil(math.sqrt(crops)))


def test_single_volume_takes_every_crop_from_one_case():
    assert rule_crops(37, "single_volume") == (37,)
    with pytest.raises(ProgressiveConfigError, match="not a rule sampling"):
        rule_crops(4, "volumes")


def test_rule_layout_keeps_the_planned_foreground_share():
    # plan batch 2, oversampling 0.33: nnU-Net forces 1 of 2, a share of 1/2; 64 crops -> the last 32 forced
    layout = rule_layout(64, 2, 0.33, False, "sqrt")
    assert layout.crops == (8,) * 8 and layout.forced == (0, 0, 0, 0, 8, 8, 8, 8)
    assert layout.foreground_share == 0.5 and not layout.distinct_cases
    single = rule_layout(9, 2, 0.33, False, "single_volume")
    assert single.crops == (9,) and single.forced == (5,), "round(4.5) half up: 5 of 9"
    probabilistic = rule_layout(10, 2, 0.4, True, "sqrt")
    assert probabilistic.forced is None and probabilistic.probability == 0.4
    # DDP: each rank its half of the crops, grouped by the rule
    assert rule_layout(64, 2, 0.33, False, "sqrt", world_size=2, rank=1).crops == (6, 6, 6, 6, 6, 2)


def test_last_crops_forced_counts_per_group():
    assert last_crops_forced((4, 4, 2), 5) == (0, 3, 2)
    assert last_crops_forced((3,), 0) == (0,)
    with pytest.raises(ValueError):
        last_crops_forced((2,), 3)


def test_crop_start_bounds_are_nnunets():
    # need_to_pad 4 on a 32-voxel axis with a 12-voxel crop: starts -2 .. 32 + 2 - 12 = 22
    assert crop_start_bounds((32, 32), (12, 12), (4, 4)) == ((-2, -2), (22, 22))
    # an axis shorter than the crop is padded to it: 5 voxels, crop 8 -> pad 3: starts -3 // 2 = -2 (nnU-Net's
    # `- need_to_pad // 2` rounds down) .. 5 + 1 + 1 - 8 = -1
    assert crop_start_bounds((5,), (8,), (0,)) == ((-2,), (-1,))


@pytest.mark.parametrize(("count", "dims", "expected"), [(8, 3, (2, 2, 2)), (9, 3, (3, 2, 2)), (1, 3, (1, 1, 1)),
                                                         (5, 2, (3, 2)), (27, 3, (3, 3, 3))])
def test_grid_shape_as_published(count, dims, expected):
    assert grid_shape(count, dims) == expected and math.prod(expected) >= count


def test_grid_places_one_crop_per_cell():
    rng = np.random.default_rng(0)
    shape, patch = (64, 64, 64), (8, 8, 8)
    lower, upper = crop_start_bounds(shape, patch, (0, 0, 0))
    for _ in range(20):
        starts = grid_crop_starts(shape, patch, lower, upper, 8, rng)
        centres = np.array(starts) + 4  # within half a voxel of the drawn point (rounded starts)
        clear = [tuple(int(c) // 32 for c in centre) for centre in centres if np.all(np.abs(centre - 32) > 0.5)]
        assert len(clear) == len(set(clear)), "2x2x2 cells of 32 voxels: no two crops centred in one cell"
        assert all(lo <= s <= hi for start in starts for s, lo, hi in zip(start, lower, upper))


def test_grid_spreads_crops_more_evenly_than_uniform():
    rng = np.random.default_rng(1)
    shape, patch, count = (96, 96), (16, 16), 9
    lower, upper = crop_start_bounds(shape, patch, (0, 0))

    def nearest_neighbour_mean(starts):
        points = np.array(starts, dtype=float)
        distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 1e9
        return distances.min(axis=1).mean()

    grid = np.mean([nearest_neighbour_mean(grid_crop_starts(shape, patch, lower, upper, count, rng))
                    for _ in range(200)])
    uniform = np.mean([nearest_neighbour_mean(random_crop_starts("uniform", shape, patch, (0, 0), count, rng))
                       for _ in range(200)])
    assert grid > 1.3 * uniform


def test_poisson_disk_keeps_crops_apart_and_within_bounds():
    rng = np.random.default_rng(2)
    patch, lower, upper = (8, 8, 8), (0, 0, 0), (56, 56, 56)
    starts = poisson_disk_crop_starts(patch, lower, upper, 8, rng)
    assert len(starts) == 8
    assert all(lo <= s <= hi for start in starts for s, lo, hi in zip(start, lower, upper))
    points = np.array(starts, dtype=float) / 56
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(8) * 9
    assert distances.min() >= 4 / 56 - 2 / 56, "radius: half a patch over the span (integer starts: -1 voxel each)"


def test_poisson_disk_fills_up_where_the_case_is_too_small():
    rng = np.random.default_rng(3)
    starts = poisson_disk_crop_starts((16, 16), (0, 0), (4, 4), 30, rng)
    assert len(starts) == 30 and all(0 <= s <= 4 for start in starts for s in start)


def test_random_crop_starts_checks_the_placement():
    rng = np.random.default_rng(4)
    assert random_crop_starts("grid", (32, 32), (8, 8), (0, 0), 0, rng) == []
    with pytest.raises(ProgressiveConfigError, match="unknown random crop placement"):
        random_crop_starts("lattice", (32, 32), (8, 8), (0, 0), 2, rng)


def test_jitter_moves_half_of_the_crops_by_at_most_the_share():
    rng = np.random.default_rng(5)
    centred, lower, upper, patch = (20, 20, 20), (0, 0, 0), (40, 40, 40), (16, 16, 16)
    shifts = np.array([np.subtract(jittered_start(centred, lower, upper, patch, 0.25, rng), centred)
                       for _ in range(4000)])
    moved = np.any(shifts != 0, axis=1).mean()
    assert 0.45 < moved < 0.55, "the published probability 1/2 (less a few zero draws)"
    assert shifts.min() == -4 and shifts.max() == 4, "a quarter of 16 voxels, both ways"
    # off: nnU-Net's centred crop
    assert jittered_start(centred, lower, upper, patch, 0.0, rng) == centred


def test_jitter_stays_within_the_bounds_and_keeps_the_foreground_voxel():
    rng = np.random.default_rng(6)
    for _ in range(2000):
        start = jittered_start((0, 38), (0, 0), (40, 40), (16, 16), 0.45, rng)
        assert 0 <= start[0] <= 7 and 31 <= start[1] <= 40
    # a start beyond the upper bound (nnU-Net pads there) only moves back
    assert all(jittered_start((45,), (0,), (40,), (16,), 0.25, rng)[0] <= 45 for _ in range(200))
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        jittered_start((0,), (0,), (1,), (4,), 0.5, rng)


def test_stage_checkpoint_names():
    assert stage_checkpoint_name(0, (16, 8, 8)) == "checkpoint_stage01_16x8x8.pth"
    assert stage_checkpoint_name(11, (64, 64)) == "checkpoint_stage12_64x64.pth"


def test_growth_order_table_in_the_docs_is_the_computed_one():
    """docs/pgps_variants.md's table and the README's figures come from scripts/growth_order_compute.py."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("growth_order_compute", root / "scripts" / "growth_order_compute.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    pooling = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    rows = script.rows((80, 192, 160), pooling, 2, 1000)
    docs = (root / "docs" / "pgps_variants.md").read_text()
    readme = (root / "README.md").read_text()
    for label, start, order, mode, stages, compute in rows:
        line = f"| {label} | {'x'.join(map(str, start))} | `{order}` | {mode} | {stages} | {compute:.3f} |"
        assert line in docs, line
    efficiency = {(label, order): compute for label, _, order, mode, _, compute in rows if mode == "efficiency"}
    assert f"default (16x64x32, `ratio`) {efficiency[('here (default)', 'ratio')]:.3f}" in readme
    assert f"`smallest` order {efficiency[('here, 2025 order', 'smallest')]:.3f}" in readme
    assert f"smallest grown axis) {efficiency[(rows[-1][0], 'smallest')]:.3f}" in readme
    assert f"axes in turn) {efficiency[('2024 code: its smallest patch and order', 'round_robin')]:.3f}" in readme
