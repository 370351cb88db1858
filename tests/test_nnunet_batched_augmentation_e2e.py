"""NNPROG_AUGMENT_ON=device end to end: real nnUNetv2_train / nnUNetv2_predict on CPU, tiny generated data."""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import SimpleITK as sitk

from nnunet_progressive.nnunet.orchestration.discovery import ext_trainer_value
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, predict, train
from nnunet_progressive.pgps.schedule import build_schedule

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off"}
DEVICE = {**FAST, "NNPROG_AUGMENT_ON": "device"}
EPOCH_COST = re.compile(r"Augmentation on device cpu: ([\d.]+) ms per batch in the training process \((\d+) batches")


def _predicts(ws, run: TrainingRun, tmp_path: Path) -> None:
    """nnUNetv2_predict with the trained fold gives a label map of each input's shape."""
    images = tmp_path / "images"
    images.mkdir()
    source = sorted((ws.folders.raw / ws.dataset_name / "imagesTr").glob("*_0000.nii.gz"))[0]
    shutil.copy(source, images / source.name)
    predict(images, tmp_path / "predictions", run, ws.folders, tmp_path / "predict.log")
    prediction = tmp_path / "predictions" / source.name.replace("_0000.nii.gz", ".nii.gz")
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(prediction))).shape == \
        sitk.GetArrayFromImage(sitk.ReadImage(str(source))).shape


def test_constant_patch_augments_on_the_device_and_keeps_it_under_continue(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**DEVICE, "NNPROG_EPOCHS": "2"})
    log = tmp_path / "train.log"
    train(run, tiny3d.folders, log)
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    text = log.read_text()
    costs = EPOCH_COST.findall(text)
    assert [int(batches) for _, batches in costs] == [2, 2] and all(float(ms) > 0 for ms, _ in costs)
    assert json.loads((fold / "nnprog_run.json").read_text())["settings"]["augment_on"] == "device"
    augmentation = json.loads((fold / "run_summary.json").read_text())["augmentation"]
    assert augmentation["on"] == "device" and augmentation["device"] == "cpu" and augmentation["batches"] == 4
    assert augmentation["seconds_per_batch"] > 0

    # --c takes the run's own NNPROG_AUGMENT_ON, whatever the environment says now
    resumed = replace(run, knobs={**FAST, "NNPROG_EPOCHS": "2", "NNPROG_AUGMENT_ON": "workers"})
    train(resumed, tiny3d.folders, log, extra=["--c"])
    text = log.read_text()
    assert "NNPROG settings differ from the run being continued (NNPROG_AUGMENT_ON: now 'workers', run " \
           "'device')" in text
    assert re.search(r"settings of the run being continued \(nnprog_run\.json\): .*NNPROG_AUGMENT_ON=device", text)
    _predicts(tiny3d, run, tmp_path)


def test_performance_augments_each_stages_batch_on_the_device(tiny3d, tmp_path):
    plan = tiny3d.plans_json()["configurations"]["3d_fullres"]
    schedule = build_schedule(plan["patch_size"], plan["architecture"]["arch_kwargs"]["strides"], plan["batch_size"],
                              4, mode="performance", min_patch=(8, 32, 32))
    assert [s.batch_size for s in schedule.stages] == [8, 4, 2, 2], "the stages grow the patch and shrink the batch"
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_PGPS_Performance", tiny3d.plans,
                      knobs={**DEVICE, "NNPROG_EPOCHS": "4", "NNPROG_MIN_PATCH": "8,32,32"})
    train(run, tiny3d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    text = (tmp_path / "train.log").read_text()
    assert len(re.findall(r"PGPS stage \d/4 .*\| augmentation on the device [\d.,]+ ms/batch \(training process\)",
                          text)) == 4
    curriculum = json.loads((fold / "curriculum.json").read_text())
    assert curriculum["augmentation"]["on"] == "device" and curriculum["augmentation"]["batches"] == 8
    assert curriculum["augmentation"]["seconds_per_batch"] > 0
    for stage, record in zip(schedule.stages, curriculum["stages"]):
        assert record["augment_on"] == "device" and record["augment_seconds_per_batch"] > 0
        assert record["samples_per_batch"] == stage.batch_size
        # voxels are the network patch's, not those of the larger crop the workers delivered
        voxels_per_sample = record["network_voxels_per_second"] / record["network_samples_per_second"]
        # (the rates are rounded to 0.1; the initial patch would be about 4x the patch)
        assert voxels_per_sample == pytest.approx(math.prod(stage.patch_size), rel=0.1)
    _predicts(tiny3d, run, tmp_path)


def test_rpss_augments_each_batch_at_its_own_patch(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 2, "nnUNetTrainer_RPSS", tiny3d.plans,
                      knobs={**DEVICE, "NNPROG_EPOCHS": "4", "NNPROG_ITERATIONS": "3", "NNPROG_MIN_PATCH": "8,32,32"})
    train(run, tiny3d.folders, tmp_path / "train.log")
    curriculum = json.loads((run.output_folder(tiny3d.folders, tiny3d.dataset_name) / "curriculum.json").read_text())
    assert curriculum["throughput"]["augment_on"] == "device" and curriculum["throughput"]["samples_per_batch"] == 2
    assert curriculum["augmentation"]["on"] == "device" and curriculum["augmentation"]["batches"] == 12


OWN_TRANSFORMS_TRAINER = '''
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_ConstantPatch


class nnUNetTrainer_OwnTransformsTest(nnUNetTrainer_ConstantPatch):
    """A user's trainer with its own augmentation (here: nnU-Net's without mirroring)."""

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes, *args, **kwargs):
        return nnUNetTrainer.get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, None,
                                                     *args, **kwargs)
'''


def test_own_transforms_are_refused_on_the_device(tiny3d, tmp_path):
    trainers = tmp_path / "user_trainers"
    trainers.mkdir()
    (trainers / "nnprog_test_own_transforms.py").write_text(OWN_TRANSFORMS_TRAINER)
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_OwnTransformsTest", tiny3d.plans,
                      knobs={**DEVICE, "NNPROG_EPOCHS": "1", "nnUNet_extTrainer": ext_trainer_value(str(trainers))})
    with pytest.raises(RuntimeError) as failure:
        train(run, tiny3d.folders, tmp_path / "train.log")
    message = str(failure.value)
    assert "NNPROG_AUGMENT_ON=device cannot run nnUNetTrainer_OwnTransformsTest" in message
    assert "nnprog_test_own_transforms.nnUNetTrainer_OwnTransformsTest" in message
    assert "Fix: NNPROG_AUGMENT_ON=workers" in message
    assert not re.search(r": Epoch 0\s*$", (tmp_path / "train.log").read_text(), re.M), "refused before training"
    assert not run.output_folder(tiny3d.folders, tiny3d.dataset_name).exists(), "a refused start leaves nothing"


def test_2d_configuration_augments_on_the_device(tiny2d, tmp_path):
    """nnU-Net's 2d loader stacks (B, C, X, Y) crops; the pipeline of the 2d patch takes them."""
    run = TrainingRun(str(tiny2d.dataset_id), "2d", 0, "nnUNetTrainer_ConstantPatch", tiny2d.plans,
                      knobs={**DEVICE, "NNPROG_EPOCHS": "1"})
    train(run, tiny2d.folders, tmp_path / "train.log")
    costs = EPOCH_COST.findall((tmp_path / "train.log").read_text())
    assert [int(batches) for _, batches in costs] == [2]
    summary = json.loads((run.output_folder(tiny2d.folders, tiny2d.dataset_name) / "run_summary.json").read_text())
    assert summary["augmentation"]["on"] == "device" and summary["augmentation"]["batches"] == 2
