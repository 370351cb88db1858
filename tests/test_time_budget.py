"""Unit tests of the time budget (stopping/time_budget.py) and of PGPS stages under a changing run length
(pgps/run_length.py): pure, no nnU-Net."""
import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.pgps.run_length import epoch_weights, rescaled_schedule
from nnunet_progressive.pgps.schedule import build_schedule
from nnunet_progressive.stopping.time_budget import (
    RATE_WINDOW,
    LengthDecision,
    run_length_for_budget,
    seconds_per_unit,
)

STRIDES_3D = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]


def _constant(n, done):
    return [1.0] * (n - done)


def test_constant_epochs_fill_the_budget_and_never_extend_the_run():
    # 10 s per epoch (the first, with start-up, 30 s): 100 s budget after 3 epochs (50 s) leaves 5 more
    decision = run_length_for_budget([30, 10, 10], [1, 1, 1], 100, 1000, lambda n: _constant(n, 3))
    assert decision.num_epochs == 8 and decision.seconds_per_unit == 10 and decision.used_seconds == 50
    assert run_length_for_budget([10, 10], [1, 1], 1e9, 50, lambda n: _constant(n, 2)).num_epochs == 50
    spent = run_length_for_budget([60, 50], [1, 1], 100, 50, lambda n: _constant(n, 2), current_num_epochs=10)
    assert spent.num_epochs == 3  # nothing more fits: the epoch about to start is the last (the rate reaches its end)
    ended = run_length_for_budget([60, 50, 50], [1, 1, 1], 100, 50, lambda n: _constant(n, 3), current_num_epochs=3)
    assert ended.num_epochs == 3  # the length in force ends here: stop now
    assert "anneals to its end at epoch 8" in decision.text()
    # the length in force is kept while it ends within 5% of the budget: 50 + 10 x 5.4 = 104 s of 100
    kept = run_length_for_budget([30, 10, 10.8], [1, 1, 1], 104, 1000, lambda n: _constant(n, 3), current_num_epochs=8)
    assert kept.num_epochs == 8
    assert run_length_for_budget([30, 10, 10.8], [1, 1, 1], 104, 1000, lambda n: _constant(n, 3),
                                 current_num_epochs=12).num_epochs == 8  # 12 would end far past it
    assert LengthDecision.from_dict(decision.to_dict()) == decision


def test_the_rate_leaves_out_the_first_epoch_once_others_exist():
    assert seconds_per_unit([100], [1.0]) == 100
    assert seconds_per_unit([100, 10, 20], [1.0, 0.5, 1.0]) == pytest.approx(30 / 1.5)
    with pytest.raises(ValueError):
        seconds_per_unit([1.0], [])
    with pytest.raises(ProgressiveConfigError):
        run_length_for_budget([1.0], [1.0], 0, 10, lambda n: _constant(n, 1))


def test_pgps_stage_boundaries_scale_with_the_run_length_and_trained_epochs_keep_their_stage():
    started = build_schedule((32, 32, 32), STRIDES_3D, 2, 90)  # 9 stages of 10 epochs
    half = rescaled_schedule(started, started, 45, 12)  # 12 epochs trained: stage 0 (0-10) stays, stage 1 runs
    assert [(s.first_epoch, s.last_epoch) for s in half.stages][:3] == [(0, 10), (10, 12), (12, 15)]
    assert half.stages[-1].last_epoch == 45 and half.stages[-1].num_epochs >= 1 and half.num_epochs == 45
    assert [half.stage_at_epoch(e).index for e in range(12)] == [started.stage_at_epoch(e).index for e in range(12)]
    again = rescaled_schedule(started, half, 60, 20)  # a later decision keeps what the earlier one trained
    assert [(s.first_epoch, s.last_epoch) for s in again.stages][:3] == [(0, 10), (10, 12), (12, 15)]
    assert again.stages[-1].last_epoch == 60
    ends = [s.last_epoch for s in again.stages]
    assert ends == sorted(ends)
    short = rescaled_schedule(started, started, 4, 1)  # most stages vanish, the planned patch still trains last
    assert short.stage_at_epoch(0).index == 0 and short.stage_at_epoch(3).index == 8
    assert short.stages[-1].num_epochs >= 1 and sum(s.num_epochs for s in short.stages) == 4


def test_pgps_budget_weighs_epochs_by_their_measured_step_times():
    started = build_schedule((32, 32, 32), STRIDES_3D, 2, 90)
    assert epoch_weights(started, 0, 90) == [1.0] * 90  # no profile: every epoch alike
    step = {(s.patch_size, s.batch_size): 0.1 + 0.01 * s.index for s in started.stages}  # planned: 0.18 s
    weights = epoch_weights(started, 0, 90, step)
    assert weights[-1] == 1.0 and weights[0] == pytest.approx(0.1 / 0.18) and len(weights) == 90
    # 10 epochs of stage 0 took 1 s each: the planned stage costs 1.8 s an epoch
    seconds = [1.0] * 10
    unit = seconds_per_unit(seconds, weights[:10])
    assert unit == pytest.approx(1.8)
    total = sum(epoch_weights(started, 10, 90, step)) * unit + 10

    def future(n):
        return epoch_weights(rescaled_schedule(started, started, n, 10), 10, n, step)

    assert run_length_for_budget(seconds, weights[:10], total, 90, future).num_epochs == 90  # the full run fits
    shorter = run_length_for_budget(seconds, weights[:10], total / 2, 90, future)
    assert 10 < shorter.num_epochs < 90 and 10 + unit * sum(future(shorter.num_epochs)) <= total / 2
    assert 10 + unit * sum(future(shorter.num_epochs + 1)) > total / 2


def test_the_rate_follows_the_most_recent_epochs():
    # epochs growing slower (PGPS without a profile): the rate is that of the last RATE_WINDOW epochs
    seconds = [30.0] + [1.0] * 10 + [2.0] * RATE_WINDOW
    assert seconds_per_unit(seconds, [1.0] * len(seconds)) == 2.0
