"""Unit tests of NNPROG_MEMORY_TARGET's rule (pgps/memory_target.py: pure, no torch) and of its knob."""
from __future__ import annotations

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import PERFORMANCE_BATCH, ProgressiveSettings, knob_table, settings_from_env
from nnunet_progressive.pgps.memory_target import (
    GIB,
    PlannedStageMemory,
    check_budget_knobs,
    fixed_bytes,
    memory_target_budget,
    peak_lines,
)
from nnunet_progressive.pgps.schedule import build_schedule

# a planned stage of 2 GiB activations and 0.5 GiB weights, gradients and optimiser state
PLANNED = PlannedStageMemory(activation_bytes=2 * GIB, fixed_bytes=0.5 * GIB, where="TrainerX on 3d_fullres")


def test_the_budget_is_what_the_target_leaves_after_the_fixed_part():
    assert memory_target_budget(PLANNED, 2.5) == pytest.approx(1.0)  # exactly the planned stage
    assert memory_target_budget(PLANNED, 8.5) == pytest.approx(4.0)  # (8.5 - 0.5) / 2
    # not a proportional scale of the whole footprint (8.5 / 2.5 = 3.4): the fixed part is paid once
    assert memory_target_budget(PLANNED, 8.5) != pytest.approx(8.5 / PLANNED.total_bytes * GIB)


def test_the_fixed_part_is_respected():
    no_fixed = PlannedStageMemory(2 * GIB, 0.0)
    heavy = PlannedStageMemory(2 * GIB, 4 * GIB)
    assert memory_target_budget(no_fixed, 8.0) == pytest.approx(4.0)
    assert memory_target_budget(heavy, 8.0) == pytest.approx(2.0)
    assert PLANNED.stage_bytes(memory_target_budget(PLANNED, 8.5)) == pytest.approx(8.5 * GIB)


def test_the_budget_grows_monotonically_with_the_target():
    targets = [2.5, 3, 4, 8, 16, 40, 80, 141]
    factors = [memory_target_budget(PLANNED, t) for t in targets]
    assert factors == sorted(factors) and len(set(factors)) == len(factors)


def test_a_target_the_planned_stage_does_not_fit_is_one_clear_error():
    with pytest.raises(ProgressiveConfigError) as failure:
        memory_target_budget(PLANNED, 2.0)
    message = str(failure.value)
    assert "NNPROG_MEMORY_TARGET=2 GiB is too small for TrainerX on 3d_fullres" in message
    assert "planned stage alone is estimated at 2.50 GiB" in message
    assert "activations 2.00 GiB" in message and "optimiser state 0.50 GiB" in message
    assert "at least 2.50" in message and "Efficiency mode" in message
    with pytest.raises(ProgressiveConfigError, match="too small"):
        memory_target_budget(PLANNED, 0.4)  # below even the fixed part


def test_fixed_bytes_per_parameter():
    assert fixed_bytes(1000, "sgd", mixed_precision=False) == 12_000  # weight, gradient, momentum
    assert fixed_bytes(1000, "sgd") == 14_000  # + autocast's fp16 copy
    assert fixed_bytes(1000, "lamb") == 18_000  # two moments
    assert fixed_bytes(1000, "sgd", workspace_bytes=500) == 14_500
    with pytest.raises(ValueError, match="no optimiser state size"):
        fixed_bytes(10, "adam")


def test_the_budget_drives_performance_batches():
    """The factor is NNPROG_BATCH_BUDGET's: a larger target, larger batches at every stage."""
    strides = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]

    def batches(target):
        factor = memory_target_budget(PLANNED, target)
        schedule = build_schedule((32, 32, 32), strides, 2, 9, mode="performance", batch_budget_factor=factor)
        return [stage.batch_size for stage in schedule.stages]

    small, large = batches(2.5), batches(8.5)
    assert small[-1] == 2 and large[-1] == 8
    assert all(b <= c for b, c in zip(small, large)) and small[0] * 4 == large[0]


def test_memory_target_and_batch_budget_are_refused_together():
    check_budget_knobs(4.0, 1.0, batch_budget_set=False)
    check_budget_knobs(None, 2.0, batch_budget_set=True)
    with pytest.raises(ProgressiveConfigError) as failure:
        check_budget_knobs(4.0, 2.0, batch_budget_set=True)
    assert "NNPROG_MEMORY_TARGET=4 and NNPROG_BATCH_BUDGET=2 are both set" in str(failure.value)
    assert "unset one of them" in str(failure.value)


def test_peak_lines_compare_with_target_and_estimate_and_warn_above_ten_percent():
    lines = peak_lines(1, 3, 4.0 * GIB, 4.0, 3.2 * GIB, 3)
    assert lines == ["Memory target: stage 1/3 peak 4.00 GiB over its first 3 iterations: 100% of the target 4 "
                     "GiB, 125% of the estimate 3.20 GiB"]
    assert len(peak_lines(2, 3, 4.4 * GIB, 4.0, 4 * GIB, 3)) == 1  # 10% above: tolerated
    warned = peak_lines(2, 3, 4.5 * GIB, 4.0, 4 * GIB, 3)
    assert len(warned) == 2 and warned[1].startswith("WARNING: stage 2/3 peaked at 4.50 GiB")
    assert "NNPROG_MEMORY_TARGET=4 GiB" in warned[1] and "the run goes on" in warned[1]


def test_the_knob():
    row = next(r for r in knob_table() if r.field == "memory_target")
    assert row.env_name == "NNPROG_MEMORY_TARGET" and row.readers == (PERFORMANCE_BATCH,)
    assert ProgressiveSettings().memory_target is None
    assert settings_from_env(environ={"NNPROG_MEMORY_TARGET": "70.5"}).memory_target == 70.5
    bad_values = (("0", "must be > 0"), ("-1", "must be > 0"), ("lots", "is not a number"),
                  ("inf", "must be a finite number"))
    for bad, why in bad_values:
        with pytest.raises(ProgressiveConfigError, match=f"NNPROG_MEMORY_TARGET: {why}"):
            settings_from_env(environ={"NNPROG_MEMORY_TARGET": bad})
    stored = ProgressiveSettings(memory_target=24).to_dict()
    assert stored["memory_target"] == 24 and ProgressiveSettings.from_dict(stored).memory_target == 24
