"""End to end through the real nnUNetv2_train / nnUNetv2_predict on CPU, tiny generated data."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from training_logs import interrupt_at_epoch, matches_per_epoch, poly_learning_rates

from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, predict, train
from nnunet_progressive.pgps.schedule import build_schedule

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off"}
VALIDATES = {"NNPROG_FINAL_VALIDATION": "on"}  # where a test checks nnU-Net's final validation
STAGE_LINE = re.compile(r"PGPS stage (\d+)/(\d+) \| patch ([\dx]+) \| batch (\d+) \| [\d,]+ voxels/s")


def _expected_schedule(ws, epochs: int, mode: str = "efficiency", max_batch=None):
    config = ws.plans_json()["configurations"][ws.configuration]
    return build_schedule(config["patch_size"], config["architecture"]["arch_kwargs"]["strides"],
                          config["batch_size"], epochs, mode=mode, max_batch=max_batch)


def _stage_lines_per_epoch(fold: Path) -> dict[int, tuple[int, str, int]]:
    """epoch -> (stage index, patch text, batch) from all training logs of a fold (resumes included)."""
    return {epoch: (int(m.group(1)) - 1, m.group(3), int(m.group(4)))
            for epoch, m in matches_per_epoch(fold, STAGE_LINE).items()}


def _patch_text(patch) -> str:
    return "x".join(map(str, patch))


def _assert_follows_schedule(fold: Path, schedule) -> None:
    seen = _stage_lines_per_epoch(fold)
    assert sorted(seen) == list(range(schedule.num_epochs))
    for epoch, (stage_index, patch, batch) in seen.items():
        stage = schedule.stage_at_epoch(epoch)
        assert (stage_index, patch, batch) == (stage.index, _patch_text(stage.patch_size), stage.batch_size), epoch


def test_efficiency_trains_validates_and_predicts(tiny3d, tmp_path):
    schedule = _expected_schedule(tiny3d, 9)
    assert len(schedule.stages) == 9, "tiny3d plan: 32^3 patch, stride 8 -> 9 stages"
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9", **VALIDATES})
    train(run, tiny3d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)

    _assert_follows_schedule(fold, schedule)
    curriculum = json.loads((fold / "curriculum.json").read_text())
    assert curriculum["schedule"] == json.loads(json.dumps(schedule.to_dict()))
    assert [s["epochs_done"] for s in curriculum["stages"]] == [1] * 9
    assert all(s["voxels_per_second"] > 0 for s in curriculum["stages"])
    assert curriculum["epochs_done"] == 9 and curriculum["total_switch_seconds"] > 0
    for name in ("checkpoint_final.pth", "pgps_schedule.png", "progress.png", "validation/summary.json"):
        assert (fold / name).is_file(), name
    assert not (fold / "checkpoint_latest.pth.nnprog.json").exists()
    # inference artefacts carry the PLANNED patch size
    saved_plans = json.loads((fold.parent / "plans.json").read_text())
    assert saved_plans["configurations"]["3d_fullres"]["patch_size"] == list(schedule.planned_patch_size)
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0

    images = tmp_path / "images"
    images.mkdir()
    raw_images = tiny3d.folders.raw / tiny3d.dataset_name / "imagesTr"
    for source in sorted(raw_images.glob("*_0000.nii.gz"))[:2]:
        shutil.copy(source, images / source.name)
    # nnU-Net's multiprocessing prediction path (worker pools) here; the other tests use its sequential mode
    predict(images, tmp_path / "predictions", run, tiny3d.folders, tmp_path / "predict.log", processes=1)
    for source in sorted(images.glob("*_0000.nii.gz")):
        prediction = tmp_path / "predictions" / source.name.replace("_0000.nii.gz", ".nii.gz")
        assert prediction.is_file()
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(prediction)))
        assert predicted.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(source))).shape
        assert set(np.unique(predicted)) <= {0, 1, 2}


def test_performance_batching_as_published(tiny3d, tmp_path):
    """No cap: the voxel budget alone; each batch holds the 2 planned cases with half the crops each, the
    planned foreground share, and the loader and network rates are in the log and curriculum.json."""
    schedule = _expected_schedule(tiny3d, 9, mode="performance")
    assert schedule.stages[0].batch_size == 64 and schedule.stages[-1].batch_size == 2
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_PGPS_Performance", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9"})
    train(run, tiny3d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    _assert_follows_schedule(fold, schedule)
    text = (tmp_path / "train.log").read_text()
    assert "| patch 16x8x8 | batch 64 | " in text and "| 2 cases x 32 crops, 50% foreground-forced | " in text
    assert re.search(r"loader [\d,.]+ samples/s \([\d,]+ voxels/s, 2 workers\) \| network [\d,.]+ samples/s", text)
    stages = json.loads((fold / "curriculum.json").read_text())["stages"]
    for stage, record in zip(schedule.stages, stages):
        assert record["samples_per_batch"] == stage.batch_size
        assert 1 <= record["cases_per_batch"] <= 2, "crops come from the 2 planned cases (drawn with replacement)"
        forced = (stage.batch_size + 1) // 2  # the planned share 1/2, rounded half up
        assert record["foreground_forced_share"] == pytest.approx(forced / stage.batch_size, abs=1e-4)
        assert record["loader_samples_per_second"] > 0 and record["network_samples_per_second"] > 0
        assert 0 <= record["wait_share"] <= 1 and record["loader_workers"] == 2


def test_planned_augmentation_regime_at_a_flat_first_stage(tiny3d, tmp_path):
    """nnU-Net's rule would give the 8x32x32 first stage dummy-2D augmentation with +-180 degree rotation; the
    planned 32^3 patch trains with 3D +-30 degrees, and so does every stage by default."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "4", "NNPROG_MIN_PATCH": "8,32,32"})
    train(run, tiny3d.folders, tmp_path / "train.log")
    text = (tmp_path / "train.log").read_text()
    assert ("Augmentation at patch 8x32x32: the planned regime (dummy 2D False, rotation +-30 deg) instead of "
            "nnU-Net's rule for this patch (dummy 2D True, rotation +-180 deg)") in text
    assert "Augmentation at patch 16x32x32" not in text, "16x32x32 is not flat: nnU-Net's rule agrees"
    _assert_follows_schedule(run.output_folder(tiny3d.folders, tiny3d.dataset_name),
                             build_schedule((32, 32, 32), tiny3d.plans_json()["configurations"]["3d_fullres"][
                                 "architecture"]["arch_kwargs"]["strides"], 2, 4, min_patch=(8, 32, 32)))


@pytest.mark.long
def test_resume_in_middle_stage_follows_uninterrupted_schedule(tiny3d, tmp_path):
    schedule = _expected_schedule(tiny3d, 9)
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 2, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9", "NNPROG_SAVE_EVERY": "1"})
    log = tmp_path / "train.log"
    # killed (SIGKILL) once epoch 4 has started: the last checkpoint is from epoch 3 or, on a fast machine, 4-5
    fold, resume_epoch = interrupt_at_epoch(run, tiny3d.folders, tiny3d.dataset_name, log, 4)
    assert 4 <= resume_epoch <= 7, "interrupted in a middle stage"
    # without its sidecar (issue #8, finding 2) the checkpoint continues with the run's stored settings
    (fold / "checkpoint_latest.pth.nnprog.json").unlink()
    # resume with a different environment: the run's own settings must win
    resumed = replace(run, knobs={**FAST, "NNPROG_EPOCHS": "30"})
    train(resumed, tiny3d.folders, log, extra=["--c"])
    text = log.read_text()
    stage = schedule.stage_at_epoch(resume_epoch)
    assert (f"Continuing at epoch {resume_epoch}: PGPS stage {stage.index + 1}/9 | patch "
            f"{_patch_text(stage.patch_size)}") in text
    assert "NNPROG settings differ from the run being continued (NNPROG_EPOCHS: now 30, run 9)" in text
    assert "checkpoint_latest.pth.nnprog.json not found next to the checkpoint" in text
    _assert_follows_schedule(fold, schedule)
    curriculum = json.loads((fold / "curriculum.json").read_text())
    assert curriculum["epochs_done"] == 9 and [s["epochs_done"] for s in curriculum["stages"]] == [1] * 9


def _logged_learning_rates(fold: Path) -> list[float]:
    import torch

    return list(torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]["lrs"])


def _killed_mid_epoch_and_continued_in_a_plain_shell(ws, run: TrainingRun, log: Path, epoch: int) -> Path:
    """Fault matrix (issue #20): SIGKILL once ``epoch`` has started (its iterations running), then ``--c`` with no
    knob of the run in the environment; the fold folder."""
    fold, resume_epoch = interrupt_at_epoch(run, ws.folders, ws.dataset_name, log, epoch)
    # any checkpoint the kill left: at ``epoch`` or a few epochs later where the kill came late (2-iteration epochs)
    assert resume_epoch is not None and resume_epoch >= 1, resume_epoch
    train(replace(run, knobs={}), ws.folders, log, extra=["--c"])
    return fold


def test_performance_killed_mid_epoch_resumes_as_the_uninterrupted_run(tiny3d, tmp_path):
    schedule = _expected_schedule(tiny3d, 9, mode="performance")
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 2, "nnUNetTrainer_PGPS_Performance", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9", "NNPROG_SAVE_EVERY": "1"})
    fold = _killed_mid_epoch_and_continued_in_a_plain_shell(tiny3d, run, tmp_path / "train.log", 4)
    _assert_follows_schedule(fold, schedule)  # stage, patch and batch of every epoch
    assert _logged_learning_rates(fold) == pytest.approx(poly_learning_rates(9), rel=1e-9)
    assert json.loads((fold / "curriculum.json").read_text())["epochs_done"] == 9


@pytest.mark.long
def test_rpss_killed_mid_epoch_resumes_as_the_uninterrupted_run(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 3, "nnUNetTrainer_RPSS", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9", "NNPROG_SAVE_EVERY": "1"})
    fold = _killed_mid_epoch_and_continued_in_a_plain_shell(tiny3d, run, tmp_path / "train.log", 4)
    rpss = matches_per_epoch(fold, re.compile(r"RPSS: (\d+) patch sizes drawn per batch \| batch (\d+) \| "))
    assert {epoch: m.groups() for epoch, m in rpss.items()} == {epoch: ("9", "2") for epoch in range(9)}
    assert _logged_learning_rates(fold) == pytest.approx(poly_learning_rates(9), rel=1e-9)
    assert json.loads((fold / "curriculum.json").read_text())["mode"] == "rpss"


def test_rpss_and_constant_patch_run(tiny3d, tmp_path):
    rpss = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 3, "nnUNetTrainer_RPSS", tiny3d.plans,
                       knobs={**FAST, "NNPROG_EPOCHS": "9"})
    train(rpss, tiny3d.folders, tmp_path / "rpss.log")
    fold = rpss.output_folder(tiny3d.folders, tiny3d.dataset_name)
    rpss_log = (tmp_path / "rpss.log").read_text()
    assert rpss_log.count("RPSS: 9 patch sizes drawn per batch | batch 2 | ") == 9
    # one augmenter for all 9 sizes: 2 training workers + 1 validation worker in every epoch
    assert re.findall(r"\| (\d+) loader processes", rpss_log) == ["3"] * 9
    assert json.loads((fold / "curriculum.json").read_text())["mode"] == "rpss"

    constant = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 3, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                           knobs={**FAST, "NNPROG_EPOCHS": "2"})
    train(constant, tiny3d.folders, tmp_path / "constant.log")
    text = (tmp_path / "constant.log").read_text()
    assert re.search(r": Epoch 1\s*$", text, re.M) and not re.search(r": Epoch 2\s*$", text, re.M)
    assert (constant.output_folder(tiny3d.folders, tiny3d.dataset_name) / "checkpoint_final.pth").is_file()


def test_2d_configuration(tiny2d, tmp_path):
    config = tiny2d.plans_json()["configurations"]["2d"]
    epochs = len(_expected_schedule(tiny2d, 100).stages)
    schedule = _expected_schedule(tiny2d, epochs)
    assert len(config["patch_size"]) == 2 and len(schedule.stages) >= 2
    run = TrainingRun(str(tiny2d.dataset_id), "2d", 0, "nnUNetTrainer_PGPS_Efficiency", tiny2d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": str(epochs), **VALIDATES})
    train(run, tiny2d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny2d.folders, tiny2d.dataset_name)
    _assert_follows_schedule(fold, schedule)
    assert (fold / "validation" / "summary.json").is_file()


def test_bad_knob_is_a_clear_error(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 4, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "3"})
    with pytest.raises(RuntimeError) as failure:
        train(run, tiny3d.folders, tmp_path / "train.log")
    assert "3 epochs cannot cover 9 patch-size stages" in str(failure.value)
