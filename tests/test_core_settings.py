"""The one knob reader (core/settings.py): the environment read once per resolve; specs, progress bars and run
status read knobs through the knob table with the trainer's own defaults."""
from __future__ import annotations

import pytest

from nnunet_progressive.benchmark.progress import expected_epochs
from nnunet_progressive.benchmark.spec import BenchmarkRun
from nnunet_progressive.core import knobs as knobs_module
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.knobs import RUN_LENGTH, STOP_AT_DICE, ProgressiveSettings
from nnunet_progressive.core.settings import (
    check_spec_knobs,
    knob_settings,
    notes_for_continued_run,
    resolve_new_run,
)

FINETUNE_DEFAULTS = ProgressiveSettings(epochs=150)  # nnUNetTrainer_Finetune's


@pytest.fixture
def reads(monkeypatch):
    """How often the environment is read."""
    calls = []
    real = knobs_module.EnvironmentKnobs.read.__func__

    def counting(cls, environ=None):
        calls.append(environ)
        return real(cls, environ)

    monkeypatch.setattr(knobs_module.EnvironmentKnobs, "read", classmethod(counting))
    return calls


def test_a_new_run_reads_the_environment_once(reads):
    environ = {"NNPROG_EPOCHS": "20", "HOME": "/x"}
    settings = resolve_new_run("T", FINETUNE_DEFAULTS, {RUN_LENGTH}, environ)
    assert settings.epochs == 20 and len(reads) == 1
    reads.clear()
    assert notes_for_continued_run(settings, FINETUNE_DEFAULTS, {"NNPROG_EPOCHS": "30"}) == [
        "NNPROG settings differ from the run being continued (NNPROG_EPOCHS: now 30, run 20)"]
    assert len(reads) == 1


def test_a_new_run_lists_every_problem_in_one_error():
    with pytest.raises(ProgressiveConfigError) as error:
        resolve_new_run("T", ProgressiveSettings(), {RUN_LENGTH},
                        {"NNPROG_EPOCHS": "ten", "NNPROG_EPOCH": "6", "NNPROG_TARGET_DICE": "0.8"},
                        refusal=lambda settings: "and the refusal")
    message = str(error.value)
    assert message.startswith("T cannot start: \n  NNPROG settings: NNPROG_EPOCHS")
    assert "NNPROG_EPOCH is not a knob" in message and "NNPROG_TARGET_DICE is set but T does not read it" in message
    assert "and the refusal" not in message, "the refusal judges valid settings only"
    assert resolve_new_run("T", ProgressiveSettings(), {STOP_AT_DICE, RUN_LENGTH},
                           {"NNPROG_TARGET_DICE": "0.8"}).target_dice == 0.8


def test_spec_knobs_are_checked_by_the_table_without_environment_hints():
    assert check_spec_knobs({"NNPROG_EPOCHS": "4", "OMP_NUM_THREADS": "2"}).epochs == 4
    with pytest.raises(ProgressiveConfigError) as unknown:
        check_spec_knobs({"NNPROG_EPOCH": "4"})
    assert str(unknown.value) == ("NNPROG_EPOCH is not a knob of nnunet-progressive; did you mean NNPROG_EPOCHS?")
    with pytest.raises(ProgressiveConfigError) as bad:
        check_spec_knobs({"NNPROG_EPOCHS": "0"})
    assert str(bad.value).startswith("NNPROG_EPOCHS: ") and "NNPROG settings" not in str(bad.value)


def test_progress_expects_the_trainer_default_epochs_with_the_run_knobs():
    assert expected_epochs(FINETUNE_DEFAULTS, {}) == 150
    assert expected_epochs(FINETUNE_DEFAULTS, {"NNPROG_EPOCHS": 20, "OTHER": "x"}) == 20
    assert expected_epochs(FINETUNE_DEFAULTS, {"NNPROG_EPOCHS": "many"}) == 150  # the run itself says what is wrong
    assert expected_epochs(ProgressiveSettings(), {}) == 1000
    assert knob_settings({"NNPROG_EPOCHS": 20}, FINETUNE_DEFAULTS).epochs == 20


@pytest.mark.parametrize("value, validates", [("off", False), ("false", False), ("No", False), (" OFF ", False),
                                              ("on", True), ("true", True)])
def test_run_status_reads_final_validation_as_the_trainer_does(value, validates):
    run = BenchmarkRun("Dataset001_A", "3d_fullres", "nnUNetPlans", "nnUNetTrainer_ConstantPatch", 0, 0,
                       {"NNPROG_FINAL_VALIDATION": value})
    assert run.validates is validates
    assert (knob_settings(run.knobs).final_validation == "on") is validates
    assert BenchmarkRun("Dataset001_A", "3d_fullres", "nnUNetPlans", "nnUNetTrainer", 0, 0).validates
