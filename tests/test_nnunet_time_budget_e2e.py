"""NNPROG_TIME_BUDGET through the real nnUNetv2_train on CPU (issue 25): a PGPS run sets its length from its measured
epochs, is killed with SIGKILL, and `--c` replays the recorded decisions; the learning rate anneals to the end."""
from __future__ import annotations

import json
import re

import pytest
import torch

from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, train

pytestmark = pytest.mark.e2e

MAX_EPOCHS = 200  # the started length (tiny3d has 9 PGPS stages); far above the budget, which sets the length
# The budget: about this many epochs at the calibration run's speed (an epoch takes 0.1 s idle, 30 s loaded). The
# run measured against it trains beside other tests: it must neither fit MAX_EPOCHS (8x faster than calibrated)
# nor spend the budget before the kill at epoch 4 (6x slower).
BUDGET_EPOCHS = 25
SHORT = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_SAVE_EVERY": "1",
         "NNPROG_FINAL_VALIDATION": "off"}


def _budget_hours(tiny3d, tmp_path) -> float:
    """A budget of about BUDGET_EPOCHS epochs on this machine, from a 9-epoch run of the same trainer (fold 1)."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      knobs={**SHORT, "NNPROG_EPOCHS": "9"})
    train(run, tiny3d.folders, tmp_path / "calibration.log")
    seconds = [end - start for start, end in zip(*_timestamps(run.output_folder(tiny3d.folders, tiny3d.dataset_name)),
                                                  strict=True)]
    return float(f"{BUDGET_EPOCHS * sum(seconds) / len(seconds) / 3600:g}")  # as the knob writes it


def _length_at(epoch: int, decisions: list[dict]) -> int:
    """The run length in force when ``epoch`` trained: the last decision made before it, else the started one."""
    made = [d["num_epochs"] for d in decisions if d["before_epoch"] <= epoch]
    return made[-1] if made else MAX_EPOCHS


def _timestamps(fold):
    logging = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    return logging["epoch_start_timestamps"], logging["epoch_end_timestamps"]


def test_time_budget_sets_the_length_and_resume_replays_it(tiny3d, tmp_path):
    budget_hours = _budget_hours(tiny3d, tmp_path)
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_PGPS_Efficiency", tiny3d.plans,
                      knobs={**SHORT, "NNPROG_TIME_BUDGET": f"{budget_hours:g}", "NNPROG_EPOCHS": str(MAX_EPOCHS)})
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    log = tmp_path / "train.log"
    train(run, tiny3d.folders, log,
          stop_when=lambda text: "Time budget" in text and re.search(r": Epoch 4\s*$", text, re.M) is not None)
    assert not (fold / "checkpoint_final.pth").exists(), "the run must have been killed"
    latest = json.loads((fold / "checkpoint_latest.pth.nnprog.json").read_text())
    before_kill = latest["length_decisions"]
    assert before_kill and all(d["before_epoch"] < latest["current_epoch"] for d in before_kill)

    train(run, tiny3d.folders, log, extra=["--c"])
    summary = json.loads((fold / "run_summary.json").read_text())
    decisions = summary["time_budget_decisions"]
    assert decisions[:len(before_kill)] == before_kill, "--c replays the decisions recorded before the kill"
    final_length = decisions[-1]["num_epochs"]
    assert final_length < MAX_EPOCHS and summary["num_epochs"] == final_length == summary["epochs_done"]
    assert all(d["used_seconds"] <= d["budget_seconds"] for d in decisions[:-1])
    epoch_seconds = [end - start for start, end in zip(*_timestamps(fold), strict=True)]
    assert sum(epoch_seconds) <= budget_hours * 3600 + max(epoch_seconds), "at most one epoch past the budget"

    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    learning_rates = checkpoint["logging"]["lrs"]
    expected = [0.01 * (1 - e / _length_at(e, decisions)) ** 0.9 for e in range(final_length)]
    assert learning_rates == pytest.approx(expected, rel=1e-9), "nnU-Net's poly follows the length in force"
    assert learning_rates[-1] == pytest.approx(0.01 * (1 / final_length) ** 0.9), "annealed to its end"

    curriculum = json.loads((fold / "curriculum.json").read_text())
    stages = curriculum["schedule"]["stages"]
    assert curriculum["schedule"]["num_epochs"] == final_length and stages[-1]["last_epoch"] == final_length
    assert stages[-1]["num_epochs"] >= 1, "the planned patch is trained at the end of the shortened run"
    logs = "\n".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))
    assert f"Time budget {budget_hours:g} h:" in logs and "Continuing with the run length of its time budget" in logs
