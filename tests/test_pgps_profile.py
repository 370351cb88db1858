"""Unit tests of measured step times (pgps/profile.py): step-time tables in, stages and time ratios out."""
import math

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import StageProfile, StepProfile
from nnunet_progressive.pgps.profile import (
    MIN_STEP_SAVING,
    StageStepTime,
    measured_choice,
    merge_stages,
    plot_profile,
    profile_order,
    profile_table,
    run_profile_seconds,
    stage_allowance,
    stages_worth_training,
    time_ratios,
    voxel_predicted_seconds,
)
from nnunet_progressive.pgps.schedule import build_schedule

STRIDES_3D = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]  # total stride 8: 32^3 gives 9 stages


def _schedule(epochs=90, mode="efficiency"):
    return build_schedule((32, 32, 32), STRIDES_3D, 2, epochs, mode=mode)


def _times(schedule, network, loader=None):
    return [StageStepTime(s.index, s.patch_size, s.batch_size, float(n), 3,
                          None if loader is None else float(loader[i]), 3 if loader is not None else 0)
            for i, (s, n) in enumerate(zip(schedule.stages, network))]


def test_rule_keeps_every_stage_when_time_follows_voxels():
    schedule = _schedule()
    times = [s.voxels_per_iteration * 1e-6 for s in schedule.stages]
    assert stages_worth_training(times) == list(range(len(times)))


def test_rule_drops_stages_that_cost_as_much_as_the_next_larger_kept_one():
    # a GPU with a fixed cost per step; by hand: 0.9 x 0.12 = 0.108 keeps stage 5 (0.105), 0.9 x 0.105 = 0.0945 keeps
    # stage 1 (0.09), and 0.081 nothing below it
    assert stages_worth_training([0.09, 0.09, 0.095, 0.10, 0.10, 0.105, 0.11, 0.115, 0.12]) == [1, 5, 8]
    assert stages_worth_training([1.0, 1.0, 1.0]) == [2]  # no saving anywhere: constant patch
    assert stages_worth_training([0.5, 0.95, 1.0], min_saving=0.1) == [0, 2]
    assert stages_worth_training([0.5, 0.95, 1.0], min_saving=0.0) == [0, 1, 2]
    assert stages_worth_training([2.0, 0.5, 1.0]) == [1, 2]  # slower than the planned stage: never trained
    with pytest.raises(ProgressiveConfigError):
        stages_worth_training([0.0, 1.0])
    with pytest.raises(ProgressiveConfigError):
        stages_worth_training([1.0], min_saving=1.0)


def test_merged_schedule_gives_a_dropped_stage_epochs_to_the_next_larger_kept_one():
    schedule = _schedule(90)
    merged = merge_stages(schedule, [1, 5, 8])
    assert [s.index for s in merged.stages] == [0, 1, 2]
    assert [s.patch_size for s in merged.stages] == [schedule.stages[i].patch_size for i in (1, 5, 8)]
    assert [(s.first_epoch, s.last_epoch) for s in merged.stages] == [(0, 20), (20, 60), (60, 90)]
    assert [s.last_epoch for s in merged.stages] == [schedule.stages[i].last_epoch for i in (1, 5, 8)]  # ends kept
    assert merged.num_epochs == 90 and sum(s.num_epochs for s in merged.stages) == 90
    with pytest.raises(ValueError):
        merge_stages(schedule, [0, 3])  # the planned stage is always trained


def test_time_ratios_and_voxel_prediction():
    schedule = _schedule(90)
    voxels = [s.voxels_per_iteration for s in schedule.stages]
    proportional = _times(schedule, [v * 1e-6 for v in voxels], [v * 2e-6 for v in voxels])
    ratios = time_ratios(schedule, proportional)
    assert ratios["network_only"] == pytest.approx(schedule.relative_compute())
    assert ratios["with_loader"] == pytest.approx(schedule.relative_compute())
    predicted = voxel_predicted_seconds(schedule, 1.0)
    assert predicted[8] == 1.0 and predicted[0] == pytest.approx(voxels[0] / voxels[8])
    flat = time_ratios(schedule, _times(schedule, [1.0] * 9))
    assert flat["network_only"] == pytest.approx(1.0) and flat["with_loader"] is None


def test_measured_choice_never_costs_more_than_constant_patch_and_records_both_predictions():
    schedule = _schedule(90)
    fixed_cost = [0.09 + 0.03 * s.voxels_per_iteration / schedule.stages[-1].voxels_per_iteration
                  for s in schedule.stages]
    choice = measured_choice(schedule, _times(schedule, fixed_cost))
    assert choice.measured_ratios["network_only"] <= 1.0
    assert choice.kept[-1] == 8 and len(choice.kept) < 9
    assert choice.default_ratios["voxels"] == pytest.approx(schedule.relative_compute())
    assert "stages kept" in choice.summary() and choice.dropped == [i for i in range(9) if i not in choice.kept]


def test_times_must_fit_the_schedule():
    schedule = _schedule(90)
    times = _times(schedule, [1.0] * 9)
    with pytest.raises(ProgressiveConfigError, match="profile this schedule again"):
        time_ratios(_schedule(90, "performance"), times)  # other batches
    with pytest.raises(ProgressiveConfigError, match="profile this schedule again"):
        measured_choice(schedule, times[:-1])


def test_allowances_and_order():
    assert profile_order(4) == [3, 0, 1, 2]
    assert stage_allowance(30, 100, 0, 4) == 25
    assert stage_allowance(10, 100, 0, 4) == 10
    assert stage_allowance(30, 100, 120, 2) == 0.0
    assert run_profile_seconds(0.5, 250, 1000, 0.4, 0.02) == pytest.approx(0.02 * 0.5 * 250 * 1000 * 0.4)
    assert MIN_STEP_SAVING == 0.10  # the README states it


def test_table_plot_and_record_mismatch(tmp_path):
    schedule = _schedule(90)
    times = _times(schedule, [0.1 + 0.01 * i for i in range(9)], [0.2] * 9)
    table = profile_table(schedule, times)
    assert table.count("\n") == 9 + 3 and "voxel ideal" in table
    plot_profile(schedule, times, tmp_path / "p.png", "title", kept=[0, 8])
    assert (tmp_path / "p.png").stat().st_size > 0
    stages = [StageProfile(index=t.index, patch_size=list(t.patch_size), batch_size=t.batch_size,
                           network_seconds=t.network_seconds, network_iterations=3) for t in times]
    profile = StepProfile(package_version="x", nnunetv2_version="2.6", torch_version="2.5", device="cpu",
                          device_name="cpu A", compile=False, mixed_precision=False, trainer="T", dataset="D",
                          plans="P", configuration="3d_fullres", plans_fingerprint="f", created="now", seconds=1.0,
                          stages=stages)
    run_stages = [(list(s.patch_size), s.batch_size) for s in schedule.stages]
    assert profile.mismatch("cpu", "cpu A", "2.5", False, run_stages, "f") is None
    assert "device name" in profile.mismatch("cpu", "cpu B", "2.5", False, run_stages, "f")
    assert "stages" in profile.mismatch("cpu", "cpu A", "2.5", False, run_stages[1:], "f")
    assert "plans entry changed" in profile.mismatch("cpu", "cpu A", "2.5", False, run_stages, "g")
    assert math.isclose(sum(s.num_epochs for s in schedule.stages), 90)
