"""Unit tests of the PGPS schedule (pure functions, no nnU-Net)."""
import math

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.schedule import (
    BatchLayout,
    batch_layout,
    build_schedule,
    ddp_stage_batch,
    forced_volumes,
    patch_sequence,
    performance_batch_sizes,
    settings_of_version,
    smallest_patch,
    split_epochs,
    total_strides,
)

# nnU-Net 3d_fullres style strides (first stage 1s) for a 128^3 patch, 5 poolings
STRIDES_3D = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
# anisotropic (e.g. prostate): fewer poolings along z
STRIDES_ANISO = [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]]
STRIDES_2D = [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2], [2, 2]]


def test_total_strides():
    assert total_strides(STRIDES_3D) == (32, 32, 32)
    assert total_strides(STRIDES_ANISO) == (4, 64, 64)
    assert total_strides(STRIDES_2D) == (64, 64)


def test_smallest_patch_has_bottleneck_of_two_voxels():
    assert smallest_patch((128, 128, 128), (32, 32, 32)) == (64, 32, 32)
    # the doubled axis is the one with the largest planned bottleneck, never beyond the plan
    assert smallest_patch((32, 160, 128), (4, 32, 32)) == (8, 32, 32)
    assert smallest_patch((8, 160, 128), (4, 32, 32)) == (4, 64, 32)
    assert smallest_patch((64, 32), (32, 32)) == (64, 32)


def test_single_voxel_planned_bottleneck_gives_single_stage():
    assert smallest_patch((32, 32, 32), (32, 32, 32)) == (32, 32, 32)
    schedule = build_schedule((32, 32, 32), [[1, 1, 1]] + [[2, 2, 2]] * 5, 2, 10)
    assert len(schedule.stages) == 1 and schedule.stages[0].num_epochs == 10


def test_patch_sequence_3d_isotropic_counts_and_ends_at_plan():
    seq = patch_sequence((128, 128, 128), (32, 32, 32))
    # 1 + ceil((128-64)/32) + 2 * ceil((128-32)/32)
    assert len(seq) == 1 + 2 + 3 + 3
    assert seq[0] == (64, 32, 32) and seq[-1] == (128, 128, 128)
    for a, b in zip(seq, seq[1:]):
        changed = [i for i in range(3) if a[i] != b[i]]
        assert len(changed) == 1, "one axis grows per stage"
        assert b[changed[0]] - a[changed[0]] == 32
    assert all(p % 32 == 0 for patch in seq for p in patch)


def test_patch_sequence_anisotropic_clips_and_respects_strides():
    planned = (20, 320, 256)
    strides = (4, 64, 64)
    seq = patch_sequence(planned, strides)
    assert seq[-1] == planned
    assert len(seq) == 1 + sum(math.ceil((p - m) / s) for p, m, s in zip(planned, seq[0], strides))
    for patch in seq:
        assert all(p % s == 0 for p, s in zip(patch, strides))
        assert all(p <= q for p, q in zip(patch, planned))


def test_patch_sequence_2d_and_odd_plans():
    seq = patch_sequence((448, 576), (64, 64))
    assert seq[0] == (64, 128) and seq[-1] == (448, 576)
    # tiny plan: planned patch equal to two bottleneck voxels
    assert patch_sequence((64, 32, 32), (32, 32, 32)) == [(64, 32, 32)]


def test_user_min_patch_validated():
    assert patch_sequence((128, 128, 128), (32, 32, 32), (64, 64, 64))[0] == (64, 64, 64)
    with pytest.raises(ProgressiveConfigError, match="multiple"):
        patch_sequence((128, 128, 128), (32, 32, 32), (48, 64, 64))
    with pytest.raises(ProgressiveConfigError, match="exceeds"):
        patch_sequence((128, 128, 128), (32, 32, 32), (160, 64, 64))
    with pytest.raises(ProgressiveConfigError, match="bottleneck"):
        patch_sequence((128, 128, 128), (32, 32, 32), (32, 32, 32))
    with pytest.raises(ProgressiveConfigError, match="axes"):
        patch_sequence((128, 128, 128), (32, 32, 32), (64, 64))


def test_planned_patch_not_multiple_of_stride_is_clear_error():
    with pytest.raises(ProgressiveConfigError, match="not a positive multiple"):
        smallest_patch((100, 128, 128), (32, 32, 32))


def test_split_epochs_even_and_last_takes_rest():
    assert split_epochs(1000, 9) == [111] * 8 + [112]
    assert sum(split_epochs(7, 3)) == 7 and split_epochs(7, 3) == [2, 2, 3]
    assert split_epochs(5, 1) == [5]


def test_split_epochs_growth_share():
    epochs = split_epochs(100, 5, growth_share=0.4)
    assert epochs == [10, 10, 10, 10, 60]
    epochs = split_epochs(10, 4, growth_share=0.5)
    assert epochs == [2, 2, 1, 5] and sum(epochs) == 10


@pytest.mark.parametrize(
    "epochs, stages, share, match",
    [(3, 9, None, "cannot cover 9"), (0, 1, None, ">= 1"), (10, 4, 1.5, "strictly between"),
     (10, 9, 0.3, "growing stages")],
)
def test_split_epochs_bad_settings(epochs, stages, share, match):
    with pytest.raises(ProgressiveConfigError, match=match):
        split_epochs(epochs, stages, share)


def test_performance_batches_keep_footprint_never_below_planned_and_capped():
    patches = patch_sequence((128, 128, 128), (32, 32, 32))
    batches = performance_batch_sizes(patches, 2)
    assert batches[-1] == 2 and batches[0] == 2 * 128**3 // (64 * 32 * 32) == 64
    for patch, batch in zip(patches, batches):
        assert batch >= 2
        assert batch * math.prod(patch) <= 2 * 128**3
    assert max(performance_batch_sizes(patches, 2, max_batch=16)) == 16
    with pytest.raises(ProgressiveConfigError, match="below the planned batch"):
        performance_batch_sizes(patches, 4, max_batch=2)


def test_performance_batch_without_cap_keeps_the_compute_of_constant_patch():
    # Hippocampus-like plan: 40x56x40 at batch 9; no cap: the voxel budget alone is the limit
    patches = patch_sequence((40, 56, 40), (8, 8, 8))
    batches = performance_batch_sizes(patches, 9)
    assert patches[0] == (8, 16, 8) and batches[0] == 9 * 40 * 56 * 40 // (8 * 16 * 8) == 787
    for patch, batch in zip(patches, batches):
        assert batch * math.prod(patch) <= 9 * 40 * 56 * 40 < (batch + 1) * math.prod(patch) or batch == 9
    schedule = build_schedule((40, 56, 40), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], 9, 1000, "performance")
    assert schedule.relative_compute() > 0.95, "without a batch cap the compute stays near constant patch"
    capped = build_schedule((40, 56, 40), [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], 9, 1000, "performance",
                            max_batch=64)
    assert capped.relative_compute() < 0.8
    assert performance_batch_sizes(patches, 9, voxel_budget=2 * 9 * 40 * 56 * 40)[-1] == 18


def test_build_schedule_efficiency_and_performance():
    eff = build_schedule((128, 128, 128), STRIDES_3D, 2, 1000)
    assert [s.batch_size for s in eff.stages] == [2] * len(eff.stages)
    assert eff.stages[-1].patch_size == (128, 128, 128)
    assert eff.stages[0].first_epoch == 0 and eff.stages[-1].last_epoch == 1000
    assert 0.2 < eff.relative_compute() < 0.6
    perf = build_schedule((128, 128, 128), STRIDES_3D, 2, 1000, mode="performance", max_batch=64)
    assert perf.stages[0].batch_size > 2 and perf.stages[-1].batch_size == 2
    assert eff.relative_compute() < perf.relative_compute() <= 1.0
    assert eff.stage_at_epoch(0).index == 0 and eff.stage_at_epoch(999).index == len(eff.stages) - 1
    assert eff.stage_at_epoch(5000) == eff.stages[-1]



def test_relative_time_from_step_times():
    eff = build_schedule((128, 128, 128), STRIDES_3D, 2, 1000)
    # time proportional to voxels: the measured ratio is the voxel ratio
    proportional = {s.index: s.voxels_per_iteration / 1e6 for s in eff.stages}
    planned = 2 * 128 ** 3 / 1e6
    assert eff.relative_time(proportional, planned) == pytest.approx(eff.relative_compute())
    # a fixed cost per step (the same for every stage) pulls the ratio towards 1
    fixed = 0.5 * planned
    with_fixed = {i: fixed + t for i, t in proportional.items()}
    ratio = eff.relative_time(with_fixed, fixed + planned)
    assert eff.relative_compute() < ratio < 1.0
    expected = sum((fixed + s.voxels_per_iteration / 1e6) * s.num_epochs for s in eff.stages) / (
        (fixed + planned) * 1000)
    assert ratio == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"stage\(s\) \[0\]"):
        eff.relative_time({i: t for i, t in proportional.items() if i != 0}, planned)
    with pytest.raises(ValueError, match="planned_seconds"):
        eff.relative_time(proportional, 0.0)

def test_build_schedule_2d_and_aniso():
    s2d = build_schedule((512, 512), STRIDES_2D, 12, 100)
    assert s2d.stages[-1].patch_size == (512, 512)
    aniso = build_schedule((32, 256, 256), STRIDES_ANISO, 2, 250, mode="performance")
    assert aniso.stages[-1].patch_size == (32, 256, 256)
    assert all(st.patch_size[0] % 4 == 0 for st in aniso.stages)


def test_build_schedule_bad_mode_and_dims():
    with pytest.raises(ProgressiveConfigError, match="unknown PGPS mode"):
        build_schedule((128, 128, 128), STRIDES_3D, 2, 100, mode="fast")
    with pytest.raises(ProgressiveConfigError, match="2D or 3D"):
        build_schedule((128,), [[1], [2]], 2, 100)
    with pytest.raises(ProgressiveConfigError, match="cannot cover"):
        build_schedule((128, 128, 128), STRIDES_3D, 2, 5)


def test_forced_volumes_follow_nnunets_positional_rule():
    assert forced_volumes(2, 0.33) == 1  # nnU-Net's default: one of two samples forced
    assert forced_volumes(1, 0.33) == 0 and forced_volumes(4, 0.33) == 1 and forced_volumes(3, 1.0) == 3
    assert forced_volumes(5, 0.0) == 0


@pytest.mark.parametrize("stage_batch, planned, share", [(2, 2, 0.5), (64, 2, 0.5), (787, 9, 3 / 9), (8, 4, 0.25),
                                                        (15, 9, 3 / 9), (3, 2, 0.5)])
def test_batch_layout_keeps_the_planned_foreground_share(stage_batch, planned, share):
    layout = batch_layout(stage_batch, planned, 0.33)
    assert layout.batch_size == stage_batch and layout.volumes == planned == layout.cases_per_batch
    assert max(layout.crops) - min(layout.crops) <= 1 and list(layout.crops) == sorted(layout.crops, reverse=True)
    assert layout.foreground_share == pytest.approx(round(stage_batch * share) / stage_batch)
    assert abs(layout.foreground_share - share) <= 0.5 / stage_batch
    flags = layout.forced_crops([0.0] * layout.volumes)
    assert sum(flags) == sum(layout.forced) and list(flags) == sorted(flags), "the last crops are forced"


def test_batch_layout_crops_whole_cases_as_published():
    layout = batch_layout(64, 2, 0.33)  # nnU-Net's default oversampling at batch 2: one forced case of two
    assert layout.crops == (32, 32) and layout.forced == (0, 32)
    assert batch_layout(2, 2, 0.33).forced == (0, 1), "at the planned batch: exactly nnU-Net's positional rule"
    assert batch_layout(4, 4, 0.33).forced == (0, 0, 0, 1)


def test_ddp_stage_batch_is_a_multiple_of_the_gpus_but_never_below_the_plan():
    assert ddp_stage_batch(63, 2, 1) == 63 and ddp_stage_batch(63, 2, 2) == 62 and ddp_stage_batch(64, 2, 4) == 64
    assert ddp_stage_batch(3, 3, 2) == 3, "the planned batch stays nnU-Net's own (uneven) split"
    assert ddp_stage_batch(5, 3, 2) == 4 and ddp_stage_batch(4, 3, 2) == 4
    with pytest.raises(ValueError):
        ddp_stage_batch(1, 2, 2)


def test_batch_layout_per_ddp_rank_and_sampling():
    # planned batch 2 over 2 GPUs: nnU-Net gives rank 0 a random case and rank 1 a forced one
    rank0 = batch_layout(64, 2, 0.33, world_size=2, rank=0)
    rank1 = batch_layout(64, 2, 0.33, world_size=2, rank=1)
    assert (rank0.crops, rank0.forced, rank1.crops, rank1.forced) == ((32,), (0,), (32,), (32,))
    # nnU-Net's split of the 9 planned cases (3, 2, 2, 2); the crops split evenly over the ranks, not the cases
    # (the Dice loss gathers per-sample terms over ranks), and the planned foreground share over all of them
    parts = [batch_layout(787, 9, 0.33, world_size=4, rank=r) for r in range(4)]
    assert [p.volumes for p in parts] == [3, 2, 2, 2] and [p.batch_size for p in parts] == [197, 197, 197, 196]
    assert [p.crops for p in parts] == [(66, 66, 65), (99, 98), (99, 98), (98, 98)]
    assert sum(sum(p.forced) for p in parts) == sum(batch_layout(787, 9, 0.33).forced) == round(787 / 3)
    equal = [batch_layout(ddp_stage_batch(63, 4, 2), 4, 0.33, world_size=2, rank=r) for r in range(2)]
    assert [p.crops for p in equal] == [(16, 15), (16, 15)], "4 cases, 63 -> 62 crops over 2 GPUs: 31 each"
    cases = batch_layout(64, 2, 0.33, sampling="cases")
    assert cases.distinct_cases and cases.cases_per_batch == 64 and cases.foreground_share == 0.5
    probabilistic = batch_layout(8, 2, 0.4, probabilistic=True)
    assert probabilistic.forced is None and probabilistic.foreground_share == 0.4
    assert probabilistic.forced_crops([0.1, 0.9]) == (True,) * 4 + (False,) * 4
    with pytest.raises(ValueError, match="below the planned batch"):
        batch_layout(1, 2, 0.33)
    with pytest.raises(ProgressiveConfigError, match="unknown batch sampling"):
        batch_layout(4, 2, 0.33, sampling="slices")
    with pytest.raises(ProgressiveConfigError, match="cannot be split over 4 GPUs"):
        batch_layout(4, 2, 0.33, world_size=4, rank=0)
    with pytest.raises(ValueError):
        BatchLayout(crops=(2, 1), forced=(0, 2))


def test_growth_orders():
    strides = (8, 32, 32)
    ratio = patch_sequence((32, 224, 224), strides)
    smallest = patch_sequence((32, 224, 224), strides, order="smallest")
    robin = patch_sequence((32, 224, 224), strides, order="round_robin")
    assert ratio[0] == smallest[0] == robin[0] == (8, 64, 32)
    assert len(ratio) == len(smallest) == len(robin) == 1 + 3 + 5 + 6
    assert ratio[-1] == smallest[-1] == robin[-1] == (32, 224, 224)
    # 2025 order: the short axis (z) fills first; ours grows the axis furthest behind its planned size (x)
    assert smallest[1:4] == [(16, 64, 32), (24, 64, 32), (32, 64, 32)]
    assert ratio[1] == (8, 64, 64)
    # 2024 order: axes in turn from axis 1, full axes skipped
    assert robin[1:4] == [(8, 96, 32), (8, 96, 64), (16, 96, 64)]
    for sequence in (ratio, smallest, robin):
        steps = [sum(a != b for a, b in zip(p, q)) for p, q in zip(sequence, sequence[1:])]
        assert steps == [1] * (len(sequence) - 1), "one axis per stage"
    with pytest.raises(ProgressiveConfigError, match="unknown growth order"):
        patch_sequence((32, 224, 224), strides, order="random")
    assert build_schedule((32, 224, 224), [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]], 2, 100,
                          growth_order="smallest").stages[1].patch_size == (16, 64, 32)


def test_schedule_to_dict_roundtrip_fields():
    d = build_schedule((64, 64, 64), [[1, 1, 1]] + [[2, 2, 2]] * 4, 2, 20).to_dict()
    assert d["planned_patch_size"] == [64, 64, 64] and d["num_epochs"] == 20
    assert sum(s["num_epochs"] for s in d["stages"]) == 20


def test_runs_from_before_the_published_batching_keep_what_they_trained_with():
    from nnunet_progressive.core.knobs import ProgressiveSettings

    stored = {"epochs": 10, "max_batch": None}  # a 0.1 record: the knobs of the published batching are not in it
    settings = ProgressiveSettings.from_dict(stored)
    restored, notes = settings_of_version(settings, stored, "0.1.3", performance=True, planned_batch=2)
    assert (restored.max_batch, restored.batch_sampling, restored.augmentation) == (64, "cases", "per_patch")
    assert len(notes) == 3 and all("0.1.3" in note for note in notes)
    assert settings_of_version(settings, stored, "0.1.3", performance=True, planned_batch=80)[0].max_batch == 80
    efficiency, _ = settings_of_version(settings, stored, None, performance=False, planned_batch=2)
    assert (efficiency.max_batch, efficiency.batch_sampling, efficiency.augmentation) == (None, "volumes", "per_patch")
    capped = {**stored, "max_batch": 16}
    assert settings_of_version(settings.replace(max_batch=16), capped, "0.1.0", True, 2)[0].max_batch == 16
    # a record with the new keys keeps them whatever its version says (0.1.0 runs of the branch that added them)
    current = settings.replace(augmentation="planned", batch_sampling="volumes").to_dict()
    assert settings_of_version(settings, current, "0.1.0", True, 2) == (settings, [])
