"""Unit tests of the PGPS schedule (pure functions, no nnU-Net)."""
import math

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.schedule import (
    build_schedule,
    foreground_oversampling,
    patch_sequence,
    performance_batch_sizes,
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
    assert batches[-1] == 2 and batches[0] == 2 * 128**3 // (64 * 32 * 32)
    for patch, batch in zip(patches, batches):
        assert batch >= 2
        assert batch * math.prod(patch) <= 2 * 128**3
    assert max(performance_batch_sizes(patches, 2, max_batch=16)) == 16
    with pytest.raises(ProgressiveConfigError, match="below the planned batch"):
        performance_batch_sizes(patches, 4, max_batch=2)


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


def test_foreground_oversampling_keeps_planned_share():
    # nnU-Net default: p=0.33 at batch 2 -> one of two samples forced (share 0.5)
    assert foreground_oversampling(2, 2, 0.33) == (0.33, False)
    share, probabilistic = foreground_oversampling(1, 2, 0.33)
    assert probabilistic and share == pytest.approx(0.5)
    share, probabilistic = foreground_oversampling(8, 2, 0.33)
    assert probabilistic and share == pytest.approx(0.5)
    assert foreground_oversampling(4, 2, 0.5) == (0.5, False)


def test_schedule_to_dict_roundtrip_fields():
    d = build_schedule((64, 64, 64), [[1, 1, 1]] + [[2, 2, 2]] * 4, 2, 20).to_dict()
    assert d["planned_patch_size"] == [64, 64, 64] and d["num_epochs"] == 20
    assert sum(s["num_epochs"] for s in d["stages"]) == 20
