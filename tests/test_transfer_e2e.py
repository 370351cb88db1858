"""Transfer learning end to end on CPU: `nnprog transfer prepare`, pre-training through the real nnUNetv2_train,
`nnprog transfer adapt` to a target with other channels and labels, every fine-tuning trainer with
-pretrained_weights (phases checked epoch by epoch, frozen weights checked in checkpoints, --c mid-phase),
nnUNetv2_predict."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from training_logs import matches_per_epoch

from nnunet_progressive.core.records import (
    CheckpointState,
    RunIdentity,
    TransferPreparation,
    TransferRecord,
    checkpoint_state_path,
    read_record,
    write_record,
)
from nnunet_progressive.datasets.prepare import plan_and_preprocess, write_small_plans
from nnunet_progressive.datasets.synthetic import SyntheticDatasetSpec, write_dataset
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, TrainingRun, predict, run_environment, train
from nnunet_progressive.transfer.finetune import build_finetune_schedule
from nnunet_progressive.transfer.mapping import ADAPTED, HEAD, LOADED, parameter_role

pytestmark = pytest.mark.e2e

SOURCE_ID, TARGET_ID = 611, 612
PLANS = "nnUNetPlans_small"
FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_SAVE_EVERY": "1",
        "NNPROG_FINAL_VALIDATION": "off"}  # no final validation unless a test checks it
PHASE_LINE = re.compile(r"(Fine-tuning phase \d+/\d+ .*?)\s*$")
SOURCE = SyntheticDatasetSpec(name="NNProgTransferSource", num_cases=6, shape=(32, 32, 32), num_organs=2,
                              num_lesions=2, modality="CT")
TARGET = SyntheticDatasetSpec(name="NNProgTransferTarget", num_cases=6, shape=(32, 32, 32), num_channels=2,
                              num_organs=1, num_lesions=2, modality="MRI", seed=3)


@dataclass(frozen=True)
class TransferWorkspace:
    root: Path
    folders: NnunetFolders
    source: str
    target: str
    source_plans: str
    pretrained: Path  # checkpoint_final of the source
    adapted: Path  # output of nnprog transfer adapt


def nnprog(folders: NnunetFolders, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "nnunet_progressive.cli.main", *args], capture_output=True,
                            text=True, env=run_environment(folders))
    if check and result.returncode != 0:
        raise AssertionError(f"nnprog {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> TransferWorkspace:
    root = tmp_path_factory.mktemp("transfer")
    folders = NnunetFolders.under(root)
    source = write_dataset(SOURCE, folders.raw, SOURCE_ID).name
    target = write_dataset(TARGET, folders.raw, TARGET_ID).name
    plan_and_preprocess(TARGET_ID, folders, ("3d_fullres",), 2, root / "plan.log")
    write_small_plans(folders.preprocessed / target / "nnUNetPlans.json", ("3d_fullres",),
                      features_per_stage=(4, 8, 16, 32, 32, 32))
    nnprog(folders, "transfer", "prepare", "--source", str(SOURCE_ID), "--target", str(TARGET_ID), "-p", PLANS)
    source_plans = f"{PLANS}_from{TARGET_ID}"
    run = TrainingRun(str(SOURCE_ID), "3d_fullres", "all", "nnUNetTrainer_ConstantPatch", source_plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "2"})
    train(run, folders, root / "pretrain.log")
    pretrained = run.output_folder(folders, source) / "checkpoint_final.pth"
    adapted = root / "adapted.pth"
    nnprog(folders, "transfer", "adapt", str(pretrained), "-d", str(TARGET_ID), "-c", "3d_fullres", "-p", PLANS,
           "-o", str(adapted))
    return TransferWorkspace(root, folders, source, target, source_plans, pretrained, adapted)


def _phase_lines(fold: Path) -> dict[int, str]:
    return {epoch: match.group(1) for epoch, match in matches_per_epoch(fold, PHASE_LINE).items()}


def _expected_phases(recipe: str, knobs: dict) -> dict[int, str]:
    epochs = int(knobs["NNPROG_EPOCHS"])
    schedule = build_finetune_schedule(recipe, epochs, 1e-3, int(knobs["NNPROG_WARMUP_EPOCHS"]),
                                       int(knobs.get("NNPROG_HEAD_EPOCHS", 10)), 5e-4,
                                       int(knobs.get("NNPROG_FROZEN_EPOCHS", 1)))
    return {epoch: schedule.describe(epoch) for epoch in range(epochs)}


def _network_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]


def test_prepare_moved_the_target_plans_and_is_safe_to_rerun(ws):
    record = read_record(ws.folders.preprocessed / ws.source / f"nnprog_transfer_{ws.source_plans}.json",
                         TransferPreparation)
    assert (record.source_dataset, record.target_dataset, record.target_plans) == (ws.source, ws.target, PLANS)
    moved = json.loads((ws.folders.preprocessed / ws.source / f"{ws.source_plans}.json").read_text())
    target = json.loads((ws.folders.preprocessed / ws.target / f"{PLANS}.json").read_text())
    assert moved["dataset_name"] == ws.source
    assert moved["configurations"]["3d_fullres"]["architecture"] == target["configurations"]["3d_fullres"][
        "architecture"]
    # CT source, MRI target: the source keeps CT normalisation with its own statistics
    assert moved["configurations"]["3d_fullres"]["normalization_schemes"] == ["CTNormalization"]
    assert target["configurations"]["3d_fullres"]["normalization_schemes"] == ["ZScoreNormalization"] * 2
    again = nnprog(ws.folders, "transfer", "prepare", "--source", str(SOURCE_ID), "--target", str(TARGET_ID),
                   "-p", PLANS)
    steps = again.stdout.split("Next:")[0]
    assert "move_plans_between_datasets" in steps and not re.search(r": ran$", steps, re.M), steps
    assert (f"NNPROG_FINAL_VALIDATION=off nnUNetv2_train {SOURCE_ID} 3d_fullres all -p {ws.source_plans} "
            f"-tr nnUNetTrainer_ConstantPatch") in again.stdout


def test_prepare_in_the_wrong_direction_names_the_fix(ws):
    result = nnprog(ws.folders, "transfer", "prepare", "--source", str(TARGET_ID), "--target", str(SOURCE_ID),
                    check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is not planned" in result.stderr and "swap --source and --target" in result.stderr


def test_adapt_maps_one_channel_onto_two_and_leaves_heads_to_nnunet(ws):
    record = read_record(str(ws.adapted) + ".transfer.json", TransferRecord)
    assert record.mapped_share == 1.0 and record.counts[HEAD] == 6
    adapted = [e for e in record.entries if e.status == ADAPTED]
    assert len(adapted) == 4 and all(e.source_shape[1] == 1 and e.target_shape[1] == 2 for e in adapted)
    # one tensor under four state-dict names (conv / all_modules.0, encoder / decoder.encoder): counted once
    assert record.counts[ADAPTED] == 1 and record.state_dict_names[ADAPTED] == 4
    assert sum(record.counts.values()) < sum(record.state_dict_names.values())
    # the heads keep the source's rows for the labels both datasets name (organ1, lesion), background to background
    assert record.kept_head_labels() == {"background": "background", "organ1": "organ1", "lesion": "lesion"}
    source, out = _network_weights(ws.pretrained), _network_weights(ws.adapted)
    first = "encoder.stages.0.0.convs.0.conv.weight"
    assert torch.allclose(out[first], source[first].repeat(1, 2, 1, 1, 1) / 2)  # mean rule: 1 -> 2 channels
    for entry in record.entries:
        if entry.status == LOADED:
            assert torch.equal(out[entry.target], source[entry.source]), entry.target


def test_adapt_reads_ddp_and_compiled_state_dicts(ws):
    """A plain state dict with DDP and torch.compile prefixes gives the same weights as nnU-Net's checkpoint."""
    prefixed = ws.root / "prefixed.pth"
    torch.save({"state_dict": {f"module._orig_mod.{k}": v for k, v in _network_weights(ws.pretrained).items()}},
               prefixed)
    out = ws.root / "from_prefixed.pth"
    nnprog(ws.folders, "transfer", "adapt", str(prefixed), "-d", str(TARGET_ID), "-c", "3d_fullres", "-p", PLANS,
           "-o", str(out), "--source-channels", "CT")
    reference, adapted = _network_weights(ws.adapted), _network_weights(out)
    for name, value in adapted.items():
        if "seg_layers" not in name:
            assert torch.equal(value, reference[name]), name
    assert read_record(str(out) + ".transfer.json", TransferRecord).source_channel_names == ["CT"]


def test_adapt_refuses_a_checkpoint_of_another_network(ws):
    result = nnprog(ws.folders, "transfer", "adapt", str(ws.pretrained), "-d", str(TARGET_ID), "-c", "3d_fullres",
                    "-p", "nnUNetPlans", "-o", str(ws.root / "wide.pth"), check=False)
    assert result.returncode == 2 and "of the target network's weights map" in result.stderr
    assert "features [4, 8, 16, 32]" in result.stderr and not (ws.root / "wide.pth").exists()


def _finetune(ws, trainer: str, fold: int, knobs: dict, log: str, **kwargs) -> tuple[TrainingRun, Path]:
    run = TrainingRun(str(TARGET_ID), "3d_fullres", fold, trainer, PLANS, knobs={**FAST, **knobs})
    train(run, ws.folders, ws.root / log, extra=("-pretrained_weights", str(ws.adapted)), **kwargs)
    return run, run.output_folder(ws.folders, ws.target)


def test_finetune_follows_its_phases_and_predicts(ws, tmp_path):
    knobs = {"NNPROG_EPOCHS": "5", "NNPROG_WARMUP_EPOCHS": "2"}
    run, fold = _finetune(ws, "nnUNetTrainer_Finetune", 0, knobs, "finetune.log")
    assert _phase_lines(fold) == _expected_phases("finetune", knobs)
    log = "\n".join(p.read_text() for p in fold.glob("training_log_*.txt"))  # the heads adapt kept, loaded
    assert re.search(r"Segmentation heads: 6 tensors loaded from .*adapted\.pth \(rows of the source kept for "
                     r"background, organ1, lesion; fresh for none\)", log), log[-2000:]
    cases = sorted((ws.folders.raw / ws.target / "imagesTr").glob("*_0000.nii.gz"))[:2]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in cases:
        for channel in range(2):
            name = case.name.replace("_0000", f"_{channel:04d}")
            (inputs / name).symlink_to(case.parent / name)
    predict(inputs, tmp_path / "out", run, ws.folders, tmp_path / "predict.log")
    for case in cases:
        prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / case.name.replace("_0000", ""))))
        assert prediction.shape == (32, 32, 32) and set(np.unique(prediction)) <= {0, 1, 2}


def test_head_first_keeps_everything_but_the_heads_until_its_phase_ends_and_resumes(ws):
    knobs = {"NNPROG_EPOCHS": "6", "NNPROG_WARMUP_EPOCHS": "1", "NNPROG_HEAD_EPOCHS": "3"}
    _, fold = _finetune(ws, "nnUNetTrainer_Finetune_HeadFirst", 1, knobs, "head_first.log",
                        stop_when=lambda output: "Epoch 2" in output.split("nnUNetTrainer_Finetune_HeadFirst")[-1])
    pretrained, latest = _network_weights(ws.adapted), _network_weights(fold / "checkpoint_latest.pth")
    for name, value in latest.items():  # after epoch 1 of 3 heads-only epochs: nothing else has moved
        if parameter_role(name) != "heads":
            assert torch.equal(value, pretrained[name]), f"{name} moved in the heads-only phase"
    run = TrainingRun(str(TARGET_ID), "3d_fullres", 1, "nnUNetTrainer_Finetune_HeadFirst", PLANS,
                      knobs={**FAST, **knobs})
    train(run, ws.folders, ws.root / "head_first.log", extra=("--c",))
    lines = _phase_lines(fold)
    assert {e: line.split(" | optimiser")[0] for e, line in lines.items()} == _expected_phases("head_first", knobs)
    assert "optimiser state reset for: decoder, new, encoder" in lines[3]
    assert (fold / "checkpoint_final.pth").is_file()


def test_frozen_encoder_freezes_only_the_pretrained_encoder_and_resumes_at_the_phase_change(ws):
    knobs = {"NNPROG_EPOCHS": "5", "NNPROG_WARMUP_EPOCHS": "1", "NNPROG_FROZEN_EPOCHS": "2",
             "NNPROG_ITERATIONS": "8"}  # epoch 2, the window of the kill below, lasts seconds
    _, fold = _finetune(ws, "nnUNetTrainer_Finetune_FrozenEncoder", 2, knobs, "frozen.log",
                        stop_when=lambda output: "Epoch 2" in output.split("FrozenEncoder")[-1])
    pretrained, latest = _network_weights(ws.adapted), _network_weights(fold / "checkpoint_latest.pth")
    statuses = read_record(str(ws.adapted) + ".transfer.json", TransferRecord).statuses()
    for name, value in latest.items():  # after epoch 1 of 2 frozen epochs
        if parameter_role(name) == "encoder" and statuses[name] == LOADED:
            assert torch.equal(value, pretrained[name]), f"{name} moved while frozen"
        elif name.startswith(("decoder.stages.", "decoder.transpconvs.")) and name.endswith("weight"):
            assert not torch.equal(value, pretrained[name]), f"{name} did not train"
    first = "encoder.stages.0.0.convs.0.conv.weight"  # adapted input convolution: trains from the start
    assert not torch.equal(latest[first], pretrained[first])
    run = TrainingRun(str(TARGET_ID), "3d_fullres", 2, "nnUNetTrainer_Finetune_FrozenEncoder", PLANS,
                      knobs={**FAST, **knobs})
    train(run, ws.folders, ws.root / "frozen.log", extra=("--c",))
    lines = _phase_lines(fold)
    assert {e: line.split(" | optimiser")[0] for e, line in lines.items()} == _expected_phases("frozen_encoder", knobs)
    assert "optimiser state reset for: encoder" in lines[2]


def test_finetune_killed_mid_epoch_resumes_in_a_plain_shell_as_the_uninterrupted_run(ws):
    """Fault matrix (issue #20): SIGKILL in the middle of an epoch after the warm-up, then --c with no knob of the
    run in the environment: every epoch has the phase and learning rate of the uninterrupted run."""
    knobs = {"NNPROG_EPOCHS": "5", "NNPROG_WARMUP_EPOCHS": "2"}
    _, fold = _finetune(ws, "nnUNetTrainer_Finetune", "all", knobs, "finetune_killed.log",
                        stop_when=lambda output: re.search(r": Epoch 3\s*$", output, re.M) is not None)
    assert not (fold / "checkpoint_final.pth").exists(), "the run must have been interrupted"
    plain_shell = TrainingRun(str(TARGET_ID), "3d_fullres", "all", "nnUNetTrainer_Finetune", PLANS, knobs={})
    train(plain_shell, ws.folders, ws.root / "finetune_killed.log", extra=("--c",))
    assert _phase_lines(fold) == _expected_phases("finetune", knobs)
    assert torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["current_epoch"] == 5


def test_finetune_with_pgps_grows_patches_and_keeps_its_phases(ws):
    knobs = {"NNPROG_EPOCHS": "9", "NNPROG_WARMUP_EPOCHS": "2"}
    _, fold = _finetune(ws, "nnUNetTrainer_Finetune_PGPS_Efficiency", 3, knobs, "pgps.log")
    assert _phase_lines(fold) == _expected_phases("finetune", knobs)
    stages = matches_per_epoch(fold, re.compile(r"PGPS stage (\d+)/(\d+) \| patch ([\dx]+)"))
    assert stages[0].group(3) != stages[8].group(3) == "32x32x32"


def test_finetune_without_pretrained_weights_stops_with_the_fix(ws):
    run = TrainingRun(str(TARGET_ID), "3d_fullres", 4, "nnUNetTrainer_Finetune", PLANS,
                      knobs={**FAST, "NNPROG_EPOCHS": "3", "NNPROG_WARMUP_EPOCHS": "1"})
    with pytest.raises(RuntimeError, match="none were loaded: pass -pretrained_weights FILE"):
        train(run, ws.folders, ws.root / "no_weights.log")


@pytest.mark.long
def test_resume_takes_the_parameter_roles_of_the_checkpoint_it_falls_back_to(ws):
    """--c with a damaged checkpoint_latest continues from checkpoint_best: the fine-tuning roles come from the
    sidecar of the checkpoint loaded, not of the one nnU-Net asked for (whose roles are made wrong here)."""
    knobs = {"NNPROG_EPOCHS": "4", "NNPROG_WARMUP_EPOCHS": "1", "NNPROG_FROZEN_EPOCHS": "2"}
    log = ws.root / "fallback.log"
    run, fold = _finetune(ws, "nnUNetTrainer_Finetune_FrozenEncoder", 4, knobs, log.name,
                          stop_when=lambda output: "Epoch 2" in output.split("FrozenEncoder")[-1])
    latest = checkpoint_state_path(fold / "checkpoint_latest.pth")
    assert (fold / "checkpoint_best.pth").is_file() and latest.is_file()
    state = read_record(latest, CheckpointState)
    assert state.finetune is not None and LOADED in state.finetune.parameter_statuses.values()
    wrong = {name: "fresh" for name in state.finetune.parameter_statuses}  # no pre-trained encoder left to freeze
    write_record(latest, state.model_copy(update={
        "current_epoch": state.current_epoch + 7,  # the sidecar is not the checkpoint's: --c falls back
        "finetune": state.finetune.model_copy(update={"parameter_statuses": wrong})}))
    train(run, ws.folders, log, extra=("--c",))
    text = log.read_text()
    assert "Continuing from checkpoint_best.pth" in text
    roles = re.findall(r"parameters per role: (\{.*?\})", text)
    assert len(roles) == 2 and roles[0] == roles[1], roles
    assert (fold / "checkpoint_final.pth").is_file()


def test_the_run_file_keeps_the_pretrained_weights_for_every_later_start(ws):
    """-pretrained_weights is read from the command line once: the new run records it (path, size, sha256) in
    nnprog_run.json. --c of the run stopped before its first checkpoint starts it again from the recorded file
    (nnU-Net loads none under --c), kept heads included; a new run there with other weights is refused."""
    knobs = {"NNPROG_EPOCHS": "2", "NNPROG_WARMUP_EPOCHS": "1"}
    log = ws.root / "recorded.log"
    run, fold = _finetune(ws, "nnUNetTrainer_Finetune", 1, knobs, log.name)
    identity = read_record(fold / "nnprog_run.json", RunIdentity)
    assert identity.pretrained_weights.path == str(ws.adapted.resolve())
    assert identity.pretrained_weights.sha256 == hashlib.sha256(ws.adapted.read_bytes()).hexdigest()
    for checkpoint in fold.glob("checkpoint_*"):  # as if stopped before its first checkpoint: the run file is left
        checkpoint.unlink()
    train(run, ws.folders, log, extra=("--c",))
    restarted = log.read_text().split("--c: loaded the pre-trained weights the run started from")
    assert len(restarted) == 2 and f"({ws.adapted.resolve()}, recorded in nnprog_run.json)" in restarted[1]
    assert re.search(r"Segmentation heads: 6 tensors loaded from .*adapted\.pth", restarted[1])
    assert f"Fine-tuning (finetune) from {ws.adapted.resolve()}" in restarted[1]
    assert (fold / "checkpoint_final.pth").is_file()
    other = ws.root / "other.pth"
    weights = torch.load(ws.adapted, map_location="cpu", weights_only=False)
    weights["network_weights"] = {k: v + 1 for k, v in weights["network_weights"].items()}
    torch.save(weights, other)
    new_run = TrainingRun(str(TARGET_ID), "3d_fullres", 1, "nnUNetTrainer_Finetune", PLANS, knobs={**FAST, **knobs})
    with pytest.raises(RuntimeError, match=r"-pretrained_weights: that run '.*adapted\.pth', now '.*other\.pth'"):
        train(new_run, ws.folders, log, extra=("-pretrained_weights", str(other)))
    assert (fold / "checkpoint_final.pth").is_file() and read_record(fold / "nnprog_run.json", RunIdentity) == identity
