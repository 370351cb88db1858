"""Heads that carry over (issue 24, nnU-Net #2820): `nnprog transfer adapt` keeps the source's head rows for the
target labels whose names match, so the adapted checkpoint, loaded by nnU-Net's own predictor before any fine-tuning,
segments those labels as well as the source model does on the target's images; a fine-tuning trainer starts from
those heads (nnU-Net's -pretrained_weights alone skips them).

2D, so that the source learns its organ in 150 CPU iterations: one nnUNetv2_train run (the source), one
short fine-tuning run."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from training_logs import seeded_knobs

from nnunet_progressive.core.records import TransferRecord, read_record
from nnunet_progressive.datasets.prepare import plan_and_preprocess, write_small_plans
from nnunet_progressive.datasets.synthetic import SyntheticDatasetSpec, write_dataset
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, TrainingRun, predict, train

pytestmark = pytest.mark.e2e

SOURCE_ID, TARGET_ID = 631, 632
PLANS = "nnUNetPlans_small"
PRETRAINER = "nnUNetTrainer_ConstantPatch"
# one CT distribution: organ k has the same contrast in both (the generator fixes it per organ class)
CONFIGURATION = "2d"
SOURCE = SyntheticDatasetSpec(name="NNProgHeadsSource", num_cases=8, shape=(64, 64), spacing=(1.0, 1.0), num_organs=2,
                              num_lesions=0, modality="CT", seed=41)
TARGET = SyntheticDatasetSpec(name="NNProgHeadsTarget", num_cases=5, shape=(64, 64), spacing=(1.0, 1.0), num_organs=2,
                              num_lesions=0, modality="CT", seed=42)
TARGET_LABELS = {"background": 0, "organ1": 1, "vessel": 2}  # organ1 matches; "vessel" is new to the source
# seeded (the same networks in every run of the suite; seed 0: source organ1 Dice 0.947 after 3 x 50 iterations,
# the fine-tuning run 0.65 at its first validation)
SEEDED = seeded_knobs(0)
PRETRAIN_KNOBS = {"NNPROG_EPOCHS": "3", "NNPROG_ITERATIONS": "50", "NNPROG_VAL_ITERATIONS": "1",
                  "NNPROG_FINAL_VALIDATION": "off", **SEEDED}


def _nnprog(folders: NnunetFolders, *args: str) -> str:
    import subprocess
    import sys

    from nnunet_progressive.nnunet.orchestration.runner import run_environment

    result = subprocess.run([sys.executable, "-m", "nnunet_progressive.cli.main", *args], capture_output=True,
                            text=True, env=run_environment(folders))
    assert result.returncode == 0, f"nnprog {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Heads:
    root: Path
    folders: NnunetFolders
    source_run: TrainingRun
    adapted: Path
    adapt_output: str
    source_dice: dict[str, float]  # source model on the target's images, per target label it also has
    adapted_dice: dict[str, float]  # the adapted checkpoint (no fine-tuning) on the same images


def _dice(prediction: np.ndarray, reference: np.ndarray, value: int) -> float:
    a, b = prediction == value, reference == value
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _mean_dice(predictions: Path, labels: Path, cases: list[str], value: int) -> float:
    return float(np.mean([_dice(_read(predictions / f"{case}.nii.gz"), _read(labels / f"{case}.nii.gz"), value)
                          for case in cases]))


def _model_folder_with(weights: dict, source_checkpoint: Path, folders: NnunetFolders, target: str) -> TrainingRun:
    """The adapted weights as a model folder of the target, what nnUNetv2_predict loads: the target's plans and
    dataset.json, the source checkpoint's trainer and settings, the adapted network weights."""
    run = TrainingRun(str(TARGET_ID), CONFIGURATION, 0, PRETRAINER, PLANS)
    fold = run.output_folder(folders, target)
    fold.mkdir(parents=True)
    preprocessed = folders.preprocessed / target
    (fold.parent / "plans.json").write_text((preprocessed / f"{PLANS}.json").read_text())
    (fold.parent / "dataset.json").write_text((preprocessed / "dataset.json").read_text())
    checkpoint = torch.load(source_checkpoint, map_location="cpu", weights_only=False)
    torch.save({**checkpoint, "network_weights": weights, "optimizer_state": None}, fold / "checkpoint_final.pth")
    return run


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Heads:
    root = tmp_path_factory.mktemp("heads")
    folders = NnunetFolders.under(root)
    source = write_dataset(SOURCE, folders.raw, SOURCE_ID).name
    target_folder = write_dataset(TARGET, folders.raw, TARGET_ID)
    target = target_folder.name
    dataset_json = json.loads((target_folder / "dataset.json").read_text())
    (target_folder / "dataset.json").write_text(json.dumps({**dataset_json, "labels": TARGET_LABELS}, indent=2))
    plan_and_preprocess(TARGET_ID, folders, (CONFIGURATION,), 2, root / "plan.log")
    write_small_plans(folders.preprocessed / target / "nnUNetPlans.json", (CONFIGURATION,),
                      features_per_stage=(8, 16, 32, 32, 32, 32))
    _nnprog(folders, "transfer", "prepare", "--source", str(SOURCE_ID), "--target", str(TARGET_ID), "-p", PLANS, "-c",
            CONFIGURATION)
    source_run = TrainingRun(str(SOURCE_ID), CONFIGURATION, "all", PRETRAINER, f"{PLANS}_from{TARGET_ID}",
                             knobs=PRETRAIN_KNOBS)
    train(source_run, folders, root / "pretrain.log")
    checkpoint = source_run.output_folder(folders, source) / "checkpoint_final.pth"
    adapted = root / "adapted.pth"
    adapt_output = _nnprog(folders, "transfer", "adapt", str(checkpoint), "-d", str(TARGET_ID), "-c", CONFIGURATION,
                           "-p", PLANS, "-o", str(adapted))

    cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (target_folder / "imagesTr").glob("*_0000.nii.gz"))[:3]
    inputs = root / "inputs"
    inputs.mkdir()
    for case in cases:
        (inputs / f"{case}_0000.nii.gz").symlink_to(target_folder / "imagesTr" / f"{case}_0000.nii.gz")
    predict(inputs, root / "by_source", source_run, folders, root / "predict.log")
    adapted_run = _model_folder_with(torch.load(adapted, map_location="cpu", weights_only=False)["network_weights"],
                                     checkpoint, folders, target)
    predict(inputs, root / "by_adapted", adapted_run, folders, root / "predict.log")
    labels = target_folder / "labelsTr"
    # organ1 is label 1 in both datasets
    source_dice = {"organ1": _mean_dice(root / "by_source", labels, cases, 1)}
    adapted_dice = {"organ1": _mean_dice(root / "by_adapted", labels, cases, 1)}
    return Heads(root, folders, source_run, adapted, adapt_output, source_dice, adapted_dice)


def test_adapt_keeps_the_rows_of_matching_labels_and_says_which(heads):
    record = read_record(str(heads.adapted) + ".transfer.json", TransferRecord)
    assert record.kept_head_labels() == {"background": "background", "organ1": "organ1"}
    assert record.head_rows["fresh"] == ["vessel"] and record.head_rows["source_channels"] == [0, 1, None]
    assert "rows kept from the source for background, organ1; fresh rows for vessel" in heads.adapt_output
    source = torch.load(heads.source_run.output_folder(heads.folders, f"Dataset{SOURCE_ID:03d}_{SOURCE.name}")
                        / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    adapted = torch.load(heads.adapted, map_location="cpu", weights_only=False)["network_weights"]
    heads_names = [n for n in adapted if ".seg_layers." in n]
    assert heads_names and all(torch.equal(adapted[n][:2], source[n][:2]) for n in heads_names)
    # vessel: fresh, not organ2 (weights: biases start at 0 in both, and the lowest head, which nnU-Net's deep
    # supervision weighs 0, keeps its start)
    assert all(not torch.equal(adapted[n][2], source[n][2]) for n in heads_names if n.endswith(".weight"))
    # tensors, not names: the report's counts add up to the unique parameters and buffers of the network
    assert sum(record.counts.values()) < sum(record.state_dict_names.values())
    assert re.search(r"\d+ tensors loaded, 0 adapted, 0 fresh, \d+ segmentation-head tensors \(\d+ state-dict names",
                     heads.adapt_output)


def test_the_adapted_checkpoint_predicts_matching_labels_before_fine_tuning(heads):
    """nnUNetv2_predict on the adapted weights: organ1's Dice is the source model's (same rows, same body)."""
    assert heads.source_dice["organ1"] > 0.5, f"the source model did not learn organ1: {heads.source_dice}"
    assert heads.adapted_dice["organ1"] == pytest.approx(heads.source_dice["organ1"], abs=0.05), (
        heads.source_dice, heads.adapted_dice)


def test_a_fine_tuning_trainer_starts_from_the_kept_heads(heads):
    run = TrainingRun(str(TARGET_ID), CONFIGURATION, 1, "nnUNetTrainer_Finetune", PLANS,
                      knobs={"NNPROG_EPOCHS": "2", "NNPROG_WARMUP_EPOCHS": "1", "NNPROG_ITERATIONS": "2",
                             "NNPROG_VAL_ITERATIONS": "2", "NNPROG_FINAL_VALIDATION": "off", **SEEDED})
    train(run, heads.folders, heads.root / "finetune.log", extra=("-pretrained_weights", str(heads.adapted)))
    fold = run.output_folder(heads.folders, f"Dataset{TARGET_ID:03d}_{TARGET.name}")
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert re.search(r"Segmentation heads: \d+ tensors loaded from .*adapted\.pth \(rows of the source kept for "
                     r"background, organ1; fresh for vessel\)", log), log[-3000:]
    # epoch 0 validates (after two iterations at a warm-up rate) with the source's organ1 head: far above chance
    first = re.search(r"Pseudo dice \[([^\]]*)\]", log)
    assert first is not None, log[-3000:]
    organ1 = float(re.findall(r"[-\d.]+(?:e-?\d+)?", first.group(1).replace("np.float32", ""))[0])
    assert organ1 > 0.5 * heads.source_dice["organ1"], (first.group(0), heads.source_dice)
    assert (fold / "checkpoint_final.pth").is_file()
