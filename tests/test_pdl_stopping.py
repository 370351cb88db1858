"""Unit tests of PDL Set 1 selection and of the stop-at-Dice bookkeeping (pure functions)."""
import math

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import ProgressiveSettings, settings_from_env
from nnunet_progressive.pdl.subsets import select_set1, set1_size
from nnunet_progressive.stopping.dice import aggregate_dice, dice_from_counts, is_check_epoch, reached

ORDER = ["c", "a", "e", "b", "d", "f"]  # most dissimilar first


def test_set1_size():
    assert set1_size(6, 0.5) == 3 and set1_size(5, 0.5) == 3 and set1_size(1, 0.1) == 1 and set1_size(4, 1.0) == 4
    with pytest.raises(ProgressiveConfigError):
        set1_size(0, 0.5)
    with pytest.raises(ProgressiveConfigError):
        set1_size(4, 0.0)


def test_select_set1_orders_and_excludes_validation():
    training = ["a", "b", "c", "d"]  # e and f are validation cases of this fold
    assert select_set1(training, 0.5, "dissimilar_first", ORDER) == ["c", "a"]
    assert select_set1(training, 0.5, "similar_first", ORDER) == ["d", "b"]
    random_set = select_set1(training, 0.5, "random", None, seed=3)
    assert len(random_set) == 2 and set(random_set) <= set(training)
    assert random_set == select_set1(list(reversed(training)), 0.5, "random", None, seed=3), "seeded, order-free"


def test_select_set1_errors():
    with pytest.raises(ProgressiveConfigError, match="stale"):
        select_set1(["a", "zz"], 0.5, "dissimilar_first", ORDER)
    with pytest.raises(ProgressiveConfigError, match="ranking is needed"):
        select_set1(["a"], 0.5, "dissimilar_first", None)
    with pytest.raises(ProgressiveConfigError, match="unknown PDL order"):
        select_set1(["a"], 0.5, "hardest_first", ORDER)


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


def test_settings_from_env_parses_and_rejects():
    settings = settings_from_env(environ={"NNPROG_TARGET_DICE": "0.85", "NNPROG_DICE_METHOD": "pseudo_dice",
                                          "NNPROG_SET1_SHARE": "0.25", "NNPROG_MIN_PATCH": "32x64x64"})
    assert settings.target_dice == 0.85 and settings.dice_method == "pseudo_dice"
    assert settings.set1_share == 0.25 and settings.min_patch == (32, 64, 64)
    assert ProgressiveSettings.from_dict(settings.to_dict()) == settings
    for env, match in (({"NNPROG_EPOCHS": "ten"}, "not an integer"), ({"NNPROG_TARGET_DICE": "1.5"}, r"\(0, 1\]"),
                       ({"NNPROG_DICE_METHOD": "fast"}, "must be one of"), ({"NNPROG_MIN_PATCH": "32"}, "2 or 3")):
        with pytest.raises(ProgressiveConfigError, match=match):
            settings_from_env(environ=env)


def test_every_knob_is_documented_under_its_environment_name():
    from nnunet_progressive.core.knobs import env_variable_help

    documented = env_variable_help()
    readme = (__import__("pathlib").Path(__file__).parent.parent / "README.md").read_text()
    for field in ProgressiveSettings.model_fields:
        name = f"NNPROG_{field.upper()}"
        assert name in documented and f"`{name}`" in readme, name
