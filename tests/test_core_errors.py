"""One error family end to end: user errors exit 2, failed nnU-Net commands exit 1, both as one line that
``nnprog`` (cli/main.py, the one mapping) prints; the classes stay the builtin errors other code catches."""
from __future__ import annotations

import os
import sys

import pytest

from nnunet_progressive.benchmark import demo as demo_module
from nnunet_progressive.benchmark.report import choose_reference
from nnunet_progressive.cli.main import main
from nnunet_progressive.core.errors import (
    DatasetExistsError,
    NnprogError,
    NnunetCommandError,
    NnunetCommandTimeout,
    ProgressiveConfigError,
)
from nnunet_progressive.core.io import claim_raw_dataset_folder
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, TrainingRun, run_logged, train


def test_a_failed_nnunet_command_is_a_named_error_with_its_output(tmp_path):
    log = tmp_path / "plan.log"
    with pytest.raises(NnunetCommandError, match=r"(?s)exit code 3: .*\nnnU-Net said no$") as failure:
        run_logged([sys.executable, "-c", "print('nnU-Net said no'); raise SystemExit(3)"], dict(os.environ), log)
    assert isinstance(failure.value, RuntimeError) and failure.value.exit_code == 1


def test_a_training_past_its_time_is_a_named_timeout(tmp_path, monkeypatch):
    folders = NnunetFolders.under(tmp_path)
    run = TrainingRun("1", "3d_fullres", 0, "nnUNetTrainer", "nnUNetPlans")
    monkeypatch.setattr(TrainingRun, "command", lambda self, extra=(): [sys.executable, "-c",
                                                                        "import time; time.sleep(30)"])
    with pytest.raises(NnunetCommandTimeout, match="ran longer than 0.5 s") as failure:
        train(run, folders, tmp_path / "train.log", timeout=0.5)
    assert isinstance(failure.value, TimeoutError) and isinstance(failure.value, NnunetCommandError)


def test_user_errors_are_config_errors_and_the_builtin_ones(tmp_path):
    (tmp_path / "Dataset007_A").mkdir()
    with pytest.raises(DatasetExistsError, match="already used") as taken:
        claim_raw_dataset_folder(tmp_path, 7, "Dataset007_B", overwrite=False)
    assert isinstance(taken.value, ProgressiveConfigError) and isinstance(taken.value, FileExistsError)
    with pytest.raises(ProgressiveConfigError, match="has no runs.*--reference"):
        choose_reference(["nnUNetTrainer"], "nnUNetTrainer_Nope")
    assert ProgressiveConfigError.exit_code == 2 and issubclass(ProgressiveConfigError, ValueError)


@pytest.mark.parametrize("error, code", [
    (NnunetCommandError("nnUNetv2_train of nnUNetTrainer did not finish (status failed); see x.log"), 1),
    (ProgressiveConfigError("--preset: no preset named 'demoo'"), 2),
])
def test_nnprog_maps_every_error_of_the_family_in_one_place(tmp_path, monkeypatch, capsys, error, code):
    def failing_demo(*args, **kwargs):
        raise error

    monkeypatch.setattr(demo_module, "run_demo", failing_demo)
    assert main(["demo", "--workspace", str(tmp_path / "ws")]) == code
    captured = capsys.readouterr()
    assert captured.err == f"nnprog demo: error: {error}\n" and captured.out == ""


def test_an_error_outside_the_family_is_not_hidden(tmp_path, monkeypatch):
    """A bug is not a user error: it keeps its traceback."""
    def broken_demo(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(demo_module, "run_demo", broken_demo)
    with pytest.raises(KeyError):
        main(["demo", "--workspace", str(tmp_path / "ws")])
    assert not issubclass(KeyError, NnprogError)
