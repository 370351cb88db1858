"""`nnprog predict`: which checkpoints nnUNetv2_predict's arguments load, and the check before it runs (the run
itself, with a damaged and an intact checkpoint: tests/test_nnunet_resume_e2e.py)."""
from __future__ import annotations

import json

import pytest

from nnunet_progressive.cli.main import main
from nnunet_progressive.cli.predict import checked_checkpoints, model_checkpoints, prediction_model
from nnunet_progressive.core.errors import ProgressiveConfigError


def test_the_model_options_take_nnunets_defaults_and_ignore_the_rest():
    model = prediction_model(["-i", "in", "-o", "out", "-device", "cpu", "-d", "501", "-c", "3d_fullres",
                              "--disable_tta", "-step_size", "0.5", "-chk_other", "x", "-npp", "0"])
    assert (model.dataset, model.plans, model.trainer, model.configuration) == (
        "501", "nnUNetPlans", "nnUNetTrainer", "3d_fullres")
    assert model.folds == ("0", "1", "2", "3", "4") and model.checkpoint == "checkpoint_final.pth"
    chosen = prediction_model(["-d", "Dataset501_X", "-c", "2d", "-f", "all", "-chk", "checkpoint_best.pth",
                               "-tr", "nnUNetTrainer_PGPS_Efficiency", "-p", "nnUNetPlans_small"])
    assert chosen.folds == ("all",) and chosen.checkpoint == "checkpoint_best.pth"
    with pytest.raises(ProgressiveConfigError, match="missing -d and -c"):
        prediction_model(["-i", "in", "-o", "out"])


def test_the_checkpoints_are_nnunets_fold_folders(tmp_path, monkeypatch):
    import nnunetv2.utilities.file_path_utilities as paths

    monkeypatch.setattr(paths, "nnUNet_results", str(tmp_path))
    model = prediction_model(["-d", "Dataset501_X", "-c", "3d_fullres", "-tr", "T", "-p", "P", "-f", "0", "all"])
    folder = tmp_path / "Dataset501_X" / "T__P__3d_fullres"
    assert model_checkpoints(model) == [folder / "fold_0" / "checkpoint_final.pth",
                                        folder / "fold_all" / "checkpoint_final.pth"]


def test_missing_damaged_and_unverified_checkpoints(tmp_path):
    from nnunet_progressive.core.records import checkpoint_state_path

    missing = tmp_path / "fold_1" / "checkpoint_final.pth"
    with pytest.raises(ProgressiveConfigError, match=f"no checkpoint {missing}; train that fold"):
        checked_checkpoints([missing])
    stock = tmp_path / "stock.pth"
    stock.write_bytes(b"weights")
    assert checked_checkpoints([stock])[0].status == "unverified"
    changed = tmp_path / "changed.pth"
    changed.write_bytes(b"weights")
    checkpoint_state_path(changed).write_text(json.dumps({"current_epoch": 1, "sha256": "0" * 64}))
    with pytest.raises(ProgressiveConfigError) as error:
        checked_checkpoints([changed])
    assert str(error.value).startswith(f"damaged checkpoint(s), nothing predicted: {changed}: ")
    assert "Restore them from a copy" in str(error.value)


def test_only_predict_hands_unknown_arguments_on(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "folder", "--disable_tta"])
    assert exit_.value.code == 2 and "unrecognized arguments: --disable_tta" in capsys.readouterr().err
    assert main(["predict", "-i", "in", "-o", "out"]) == 2
    assert "nnprog predict: error: missing -d and -c" in capsys.readouterr().err


def test_predict_help_names_the_check(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "sha256" in capsys.readouterr().out
