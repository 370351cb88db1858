"""Starts that cannot work, through the real nnUNetv2_train on CPU (issue #20, input half): one message on stderr
(``nnUNetv2_train: error: ...``), no traceback, and nothing left behind in nnUNet_results."""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest
import torch
from training_logs import everything_under, one_start_error

from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, run_environment, train

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_EPOCHS": "1", "NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1",
        "NNPROG_FINAL_VALIDATION": "off"}


def _run(run: TrainingRun, ws, extra=()) -> subprocess.CompletedProcess:
    return subprocess.run(run.command(extra), env=run_environment(ws.folders, run.knobs, run.device),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_no_cuda_gpu_without_device_cpu_is_one_message_at_start(tiny3d):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      device="cuda", knobs=FAST)
    error = one_start_error(_run(run, tiny3d))
    assert "no CUDA GPU found" in error and "add -device cpu" in error
    assert everything_under(tiny3d.folders.results) == [], "no dataset, trainer or fold folder, no log"


def test_unreadable_or_unfitting_pretrained_weights_stop_the_start_and_leave_nothing(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_Finetune", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "4"})  # fine-tuning needs a poly epoch after its warmup
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(bytes(range(256)) * 4)
    bare = tmp_path / "bare.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, bare)  # a state dict, not nnU-Net's checkpoint format
    unfitting = tmp_path / "unfitting.pth"
    torch.save({"network_weights": {"encoder.stages.0.0.convs.0.conv.weight": torch.zeros(1)}}, unfitting)
    cases = [(garbage, "cannot be read as a PyTorch checkpoint"), (bare, "without 'network_weights'"),
             (tmp_path / "missing.pth", "no such file"), (unfitting, "does not fit the network of")]
    for weights, fragment in cases:
        error = one_start_error(_run(run, tiny3d, ["-pretrained_weights", str(weights)]))
        assert f"-pretrained_weights {weights}" in error and fragment in error, error
        assert everything_under(tiny3d.folders.results) == [], f"{weights.name}: nothing left behind"
    assert "nnprog transfer adapt" in error  # the unfitting file: the command that maps it
    error = one_start_error(_run(run, tiny3d, ["-pretrained_weights", str(unfitting), "--c"]))
    assert "with --c: pre-trained weights are loaded at the start of a run only" in error
    plain = replace(run, trainer="nnUNetTrainer_ConstantPatch", knobs=FAST)  # any trainer of the package
    error = one_start_error(_run(plain, tiny3d, ["-pretrained_weights", str(garbage)]))
    assert "cannot be read as a PyTorch checkpoint" in error
    assert everything_under(tiny3d.folders.results) == []


def test_val_of_an_unfinished_run_names_the_missing_checkpoint_and_the_fix(tiny3d):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_ConstantPatch", tiny3d.plans, knobs=FAST)
    error = one_start_error(_run(run, tiny3d, ["--val"]))
    assert "--val needs" in error and "checkpoint_final.pth" in error and "without --val" in error
    assert everything_under(tiny3d.folders.results) == []
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    fold.mkdir(parents=True)
    (fold / "checkpoint_latest.pth").write_bytes(b"")  # what a run killed mid-way has
    error = one_start_error(_run(run, tiny3d, ["--val"]))
    assert "it holds checkpoint_latest.pth: the training has not finished" in error and "with --c" in error
    assert everything_under(fold) == ["checkpoint_latest.pth"], "nothing added"


@pytest.mark.parametrize("knob", ["NNPROG_EPOCH", "nnprog_epochs", "NN_PROG_EPOCHS"])
def test_refused_start_leaves_no_empty_dataset_folder(tiny3d, knob):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, knob: "20"})
    error = one_start_error(_run(run, tiny3d))
    assert f"{knob} is not a knob of nnunet-progressive" in error and "did you mean NNPROG_EPOCHS?" in error
    assert everything_under(tiny3d.folders.results) == [], "not even an empty dataset folder"


def test_stale_temporary_files_of_a_killed_save_are_removed_at_the_next_start(tiny3d, tmp_path):
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 3, "nnUNetTrainer_ConstantPatch", tiny3d.plans, knobs=FAST)
    train(run, tiny3d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    stale = [fold / ".checkpoint_latest.pth.1a2b3c4d.tmp", fold / ".checkpoint_latest.pth.nnprog.json.0badc0de.tmp"]
    for path in stale:
        path.write_bytes(b"")  # what a kill during a save leaves (a 0-byte temporary file)
    kept = fold / ".my_notes.tmp"  # not a name the package's writer gives: left alone
    kept.write_text("mine")
    continued = _run(replace(run, knobs={}), tiny3d, ["--c"])
    assert continued.returncode == 0, continued.stderr[-3000:]
    assert not any(path.exists() for path in stale) and kept.exists()
    assert "removed .checkpoint_latest.pth.1a2b3c4d.tmp" in continued.stdout
    assert json.loads((fold / "nnprog_run.json").read_text())["settings"]["epochs"] == 1


def test_a_fold_of_a_dataset_with_fewer_than_five_cases_is_one_message(tiny3d, tmp_path):
    """nnU-Net would stop with scikit-learn's KFold traceback in its first epoch's set-up; fold `all` trains."""
    one_case = tmp_path / "preprocessed" / "Dataset778_OneCase"
    one_case.mkdir(parents=True)
    plans = tiny3d.plans_json()
    plans["dataset_name"] = one_case.name
    (one_case / f"{tiny3d.plans}.json").write_text(json.dumps(plans))
    dataset_json = json.loads((tiny3d.preprocessed_dataset / "dataset.json").read_text())
    (one_case / "dataset.json").write_text(json.dumps({**dataset_json, "numTraining": 1}))
    ws = replace(tiny3d, folders=replace(tiny3d.folders, preprocessed=one_case.parent))
    run = TrainingRun("778", "3d_fullres", 0, "nnUNetTrainer_PDL_Random", tiny3d.plans, knobs=FAST)
    error = one_start_error(_run(run, ws))
    assert "Dataset778_OneCase has 1 training case(s)" in error and "fold `all`" in error
    assert everything_under(tiny3d.folders.results) == []
