"""Unit tests of the stop-at-Dice bookkeeping (pure functions)."""
import math

import pytest

from nnunet_progressive.stopping.dice import aggregate_dice, dice_from_counts, is_check_epoch, reached


def test_dice_and_aggregation_follow_nnunet_conventions():
    assert dice_from_counts(5, 0, 0) == 1.0 and dice_from_counts(1, 1, 2) == pytest.approx(2 / 5)
    assert math.isnan(dice_from_counts(0, 0, 0))
    mean, per_class = aggregate_dice([[1.0, float("nan")], [0.5, 0.2]])
    assert per_class == pytest.approx([0.75, 0.2]) and mean == pytest.approx(0.475)


def test_check_epochs_and_reached():
    assert [e for e in range(12) if is_check_epoch(e, 5, 12)] == [4, 9, 11]
    checks = [{"epoch": 4, "train_wall_seconds": 10.0, "dice": 0.5}, {"epoch": 9, "train_wall_seconds": 20.0,
                                                                       "dice": 0.8, "extra": 1}]
    assert reached(checks, 0.7) == {"epoch": 9, "train_wall_seconds": 20.0, "dice": 0.8}
    assert reached(checks, 0.9) is None and reached(checks, None) is None
