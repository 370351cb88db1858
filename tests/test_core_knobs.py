"""The knob table (core/knobs.py): parsing, unknown names, unused knobs, and the README's copy."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import (
    KNOB_NAMES,
    PATCH_CURRICULUM,
    RUN_LENGTH,
    EnvironmentKnobs,
    ProgressiveSettings,
    closest_knob_name,
    problems_for_trainer,
    readme_table,
    settings_from_env,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_holds_the_generated_knob_table():
    text = README.read_text()
    match = re.search(r"<!-- knob table:[^\n]*-->\n(.*?)\n<!-- end of knob table -->", text, re.S)
    assert match, "README.md lost the knob table markers"
    assert match.group(1) == readme_table(), "README knob table is stale: paste `nnprog knobs --markdown`"


@pytest.mark.parametrize("env, match", [
    ({"NNPROG_BATCH_BUDGET": "nan"}, "NNPROG_BATCH_BUDGET: must be a finite number"),
    ({"NNPROG_BATCH_BUDGET": "inf"}, "finite"),
    ({"NNPROG_BATCH_BUDGET": "0"}, "must be > 0"),
    ({"NNPROG_EPOCHS": "0"}, "NNPROG_EPOCHS: must be >= 1"),
    ({"NNPROG_PDL_SEED": "-1"}, "must be >= 0"),
])
def test_bad_values_name_the_knob(env, match):
    with pytest.raises(ProgressiveConfigError, match=match):
        settings_from_env(environ=env)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ProgressiveConfigError) as failure:
        settings_from_env(environ={"NNPROG_EPOCHS": "x", "NNPROG_ITERATIONS": "0"})
    assert "NNPROG_EPOCHS" in str(failure.value) and "NNPROG_ITERATIONS" in str(failure.value)


def test_misspelt_knob_suggests_the_closest_name():
    with pytest.raises(ProgressiveConfigError, match="NNPROG_EPOCH is not a knob.*did you mean NNPROG_EPOCHS"):
        settings_from_env(environ={"NNPROG_EPOCH": "6"})
    with pytest.raises(ProgressiveConfigError, match="did you mean NNPROG_ITERATIONS"):
        settings_from_env(environ={"NNPROG_ITERATION": "3"})
    assert settings_from_env(environ={"NNPROG_EPOCH": "6"}, check_unknown=False) == ProgressiveSettings()


@pytest.mark.parametrize("name", ["nnprog_epochs", "NNPROGEPOCHS", "NN_PROG_EPOCHS", "Nnprog_Epochs",
                                  "NNPROG__EPOCHS", "NNPROG_EPOCHS_", "_NNPROG_EPOCHS"])
def test_near_miss_spellings_of_a_knob_are_refused_with_the_right_name(name):
    with pytest.raises(ProgressiveConfigError, match=f"{name} is not a knob.*did you mean NNPROG_EPOCHS\\?"):
        settings_from_env(environ={name: "20"})
    assert EnvironmentKnobs.read({name: "20"}).unknown == (name,)
    assert closest_knob_name(name) == "NNPROG_EPOCHS"


def test_near_miss_of_the_prefix_alone_lists_the_knobs_and_other_variables_pass():
    with pytest.raises(ProgressiveConfigError, match="nnprog_whatever is not a knob.*the knobs are NNPROG_EPOCHS"):
        settings_from_env(environ={"nnprog_whatever": "1"})
    assert closest_knob_name("NN_PROG_SET1EPOCHS") == "NNPROG_SET1_EPOCHS"
    others = {"NNUNET_RESULTS": "x", "nnUNet_raw": "y", "PROG_EPOCHS": "3", "NN_EPOCHS": "3", "NNPROG_EPOCHS": "7"}
    assert EnvironmentKnobs.read(others).unknown == ()
    assert settings_from_env(environ=others).epochs == 7


def test_knobs_a_trainer_does_not_read_are_named():
    env = {"NNPROG_GROWTH_SHARE": "0.5", "NNPROG_EPOCHS": "4"}
    problems = problems_for_trainer("nnUNetTrainer_ConstantPatch", {RUN_LENGTH}, env)
    assert len(problems) == 1 and "NNPROG_GROWTH_SHARE" in problems[0] and "PGPS curriculum" in problems[0]
    assert problems_for_trainer("nnUNetTrainer_PGPS_Efficiency", {RUN_LENGTH, PATCH_CURRICULUM}, env) == []


def test_settings_round_trip_and_replace():
    settings = settings_from_env(environ={"NNPROG_MIN_PATCH": "16x32x32", "NNPROG_EPOCHS": "12"})
    assert ProgressiveSettings.from_dict(settings.to_dict()) == settings
    assert settings.replace(epochs=20).epochs == 20 and settings.epochs == 12
    assert settings.set_knobs() == {"NNPROG_EPOCHS": 12, "NNPROG_MIN_PATCH": [16, 32, 32]}
    assert set(KNOB_NAMES) == {f"NNPROG_{f.upper()}" for f in ProgressiveSettings.model_fields}


def test_settings_from_env_parses_and_rejects():
    settings = settings_from_env(environ={"NNPROG_TARGET_DICE": "0.85", "NNPROG_DICE_METHOD": "pseudo_dice",
                                          "NNPROG_SET1_SHARE": "0.25", "NNPROG_MIN_PATCH": "32x64x64"})
    assert settings.target_dice == 0.85 and settings.dice_method == "pseudo_dice"
    assert settings.set1_share == 0.25 and settings.min_patch == (32, 64, 64)
    assert ProgressiveSettings.from_dict(settings.to_dict()) == settings
    for text, value in (("off", "off"), ("OFF", "off"), ("false", "off"), ("False", "off"), ("on", "on"),
                        ("true", "on"), ("yes", "on")):  # YAML's unquoted off/on arrive as booleans
        assert settings_from_env(environ={"NNPROG_FINAL_VALIDATION": text}).final_validation == value
    for env, match in (({"NNPROG_EPOCHS": "ten"}, "not an integer"), ({"NNPROG_TARGET_DICE": "1.5"}, r"\(0, 1\]"),
                       ({"NNPROG_DICE_METHOD": "fast"}, "must be one of"), ({"NNPROG_MIN_PATCH": "32"}, "2 or 3"),
                       ({"NNPROG_FINAL_VALIDATION": "skip"}, "must be one of")):
        with pytest.raises(ProgressiveConfigError, match=match):
            settings_from_env(environ=env)


def test_every_knob_is_documented_under_its_environment_name():
    from nnunet_progressive.core.knobs import env_variable_help

    documented = env_variable_help()
    readme = (__import__("pathlib").Path(__file__).parent.parent / "README.md").read_text()
    for field in ProgressiveSettings.model_fields:
        name = f"NNPROG_{field.upper()}"
        assert name in documented and f"`{name}`" in readme, name
