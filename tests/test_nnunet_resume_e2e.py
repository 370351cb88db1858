"""Runs you can trust, through the real nnUNetv2_train on CPU (issue #8): one regression test per finding.

Interrupted runs are killed with SIGKILL, as a cluster's time limit or an out-of-memory kill would.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from checkpoint_damage import flip_tensor_bytes
from process_tree import command_line, descendants, kill_all, left_alive
from training_logs import poly_learning_rates

from nnunet_progressive.core.errors import RunStateError
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, run_environment, train

pytestmark = pytest.mark.e2e

FAST = {"NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off"}


def _run(run: TrainingRun, ws, extra=(), timeout: float = 900) -> subprocess.CompletedProcess:
    """nnUNetv2_train with stdout and stderr captured (for the exit code and the message a user sees)."""
    return subprocess.run(run.command(extra), env=run_environment(ws.folders, run.knobs, run.device),
                          capture_output=True, text=True, timeout=timeout)


def _started_epoch(number: int):
    return lambda text: re.search(rf": Epoch {number}\s*$", text, re.M) is not None


def _logged(checkpoint: Path, key: str) -> list:
    return list(torch.load(checkpoint, map_location="cpu", weights_only=False)["logging"][key])


def _fold_logs(fold: Path) -> str:
    return "\n".join(log.read_text() for log in sorted(fold.glob("training_log_*.txt")))


def test_resume_in_a_plain_shell_keeps_learning_rate_checks_and_settings(tiny3d, tmp_path):
    """Findings 1 (learning rate), 4 (Dice checks of checkpoint epochs), 6 (invalid environment knob on --c),
    13 (start-up log lists the knobs read), and a new run with other settings in the same fold (run identity)."""
    knobs = {**FAST, "NNPROG_EPOCHS": "6", "NNPROG_SAVE_EVERY": "1", "NNPROG_CHECK_EVERY": "1",
             "NNPROG_DICE_METHOD": "pseudo_dice"}
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_StopAtDice", tiny3d.plans, knobs=knobs)
    log = tmp_path / "train.log"
    train(run, tiny3d.folders, log, stop_when=_started_epoch(3))
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    assert not (fold / "checkpoint_final.pth").exists(), "the run must have been interrupted"
    assert json.loads((fold / "nnprog_run.json").read_text())["settings"]["epochs"] == 6

    plain_shell = replace(run, knobs={"NNPROG_EPOCHS": "ten"})  # no knob of the run, one invalid
    resumed = _run(plain_shell, tiny3d, ["--c"])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    logs = _fold_logs(fold)
    assert "WARNING: ignored invalid NNPROG settings" in logs and "NNPROG_EPOCHS: is not an integer" in logs

    final = fold / "checkpoint_final.pth"
    assert _logged(final, "lrs") == pytest.approx(poly_learning_rates(6), rel=1e-9)
    time_to_dice = json.loads((fold / "time_to_dice.json").read_text())
    assert [c["epoch"] for c in time_to_dice["checks"]] == list(range(6)), "every check survives the resume"
    seconds = [c["train_wall_seconds"] for c in time_to_dice["checks"]]
    assert seconds == sorted(seconds) and time_to_dice["stopped_by"] == "max_epochs"
    summary = json.loads((fold / "run_summary.json").read_text())
    assert summary["epochs_done"] == 6 and summary["train_wall_seconds"] == pytest.approx(
        sum(_epoch_seconds(final)) - sum(c["check_seconds"] for c in time_to_dice["checks"]), abs=0.05)

    startup = re.search(r"nnunet-progressive [^,]+, settings of a new run[^:]*: (.*)", logs).group(1)
    assert "NNPROG_EPOCHS=6" in startup and "NNPROG_TARGET_DICE=None" in startup
    assert "GROWTH_SHARE" not in startup and "SET1" not in startup and "RANKING" not in startup

    other = _run(replace(run, knobs={**knobs, "NNPROG_EPOCHS": "7"}), tiny3d)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "holds a run of nnUNetTrainer_StopAtDice with other settings (NNPROG_EPOCHS: that run 6, now 7)" \
        in other.stderr
    assert "--c" in other.stderr and f"rm -r {fold}" in other.stderr
    assert _logged(final, "lrs") == pytest.approx(poly_learning_rates(6)), "the existing run is untouched"


def _epoch_seconds(checkpoint: Path) -> list[float]:
    starts = _logged(checkpoint, "epoch_start_timestamps")
    ends = _logged(checkpoint, "epoch_end_timestamps")
    return [e - s for s, e in zip(starts, ends)]


def test_bad_knobs_stop_a_new_run_cleanly_and_same_settings_start_over(tiny3d, tmp_path):
    """Finding 5 (misspelt and unread knobs), 10 (no stray training log / fold folder), run identity."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 2, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "1", "NNPROG_EPOCH": "6", "NNPROG_GROWTH_SHARE": "0.5"})
    fold_folder = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    trainer_folder = fold_folder.parent
    folder_existed = trainer_folder.exists()  # other tests may train other folds of this trainer
    assert not fold_folder.exists()
    failed = _run(run, tiny3d)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert failed.stderr.count("nnUNetv2_train: error: nnUNetTrainer_ConstantPatch cannot start") == 1
    assert "NNPROG_EPOCH is not a knob of nnunet-progressive; did you mean NNPROG_EPOCHS?" in failed.stderr
    assert "NNPROG_GROWTH_SHARE is set but nnUNetTrainer_ConstantPatch does not read it" in failed.stderr
    assert not fold_folder.exists(), "a failed start leaves no fold folder or training log behind"
    assert trainer_folder.exists() == folder_existed

    good = replace(run, knobs={**FAST, "NNPROG_EPOCHS": "1"})
    train(good, tiny3d.folders, tmp_path / "train.log")
    fold = good.output_folder(tiny3d.folders, tiny3d.dataset_name)
    first_run = json.loads((fold / "nnprog_run.json").read_text())
    train(good, tiny3d.folders, tmp_path / "train.log")
    second_run = json.loads((fold / "nnprog_run.json").read_text())
    assert second_run["run_id"] != first_run["run_id"] and second_run["settings"] == first_run["settings"]
    assert "Starting over: " in _fold_logs(fold)
    assert not list(fold.glob(".*.tmp")), "atomic writes leave no temporary file"


def test_damaged_latest_checkpoint_falls_back_to_an_intact_one(tiny3d, tmp_path):
    """Finding 7: a truncated checkpoint_latest.pth (a kill while nnU-Net wrote it in place)."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "4", "NNPROG_SAVE_EVERY": "1"})
    log = tmp_path / "train.log"
    train(run, tiny3d.folders, log, stop_when=_started_epoch(2))
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    latest = fold / "checkpoint_latest.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    train(run, tiny3d.folders, log, extra=["--c"])
    logs = _fold_logs(fold)
    assert "checkpoint_latest.pth cannot be read" in logs and "Continuing from checkpoint_best.pth (epoch" in logs
    final = fold / "checkpoint_final.pth"
    assert torch.load(final, map_location="cpu", weights_only=False)["current_epoch"] == 4
    assert _logged(final, "lrs") == pytest.approx(poly_learning_rates(4))


def test_resume_before_the_first_checkpoint_starts_the_recorded_run_again(tiny3d, tmp_path):
    """Issue #20: kill -9 before the first checkpoint, then --c in a plain shell: nnU-Net finds no checkpoint and
    "starts a new training"; it must be the recorded run (its settings, its run file), not a default one."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "3", "NNPROG_SAVE_EVERY": "1", "NNPROG_ITERATIONS": "10"})
    log = tmp_path / "train.log"
    train(run, tiny3d.folders, log, stop_when=_started_epoch(0))  # 10 iterations: the kill lands inside epoch 0
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    assert not list(fold.glob("checkpoint_*.pth")), "killed before the first checkpoint"
    recorded = (fold / "nnprog_run.json").read_text()
    assert json.loads(recorded)["settings"]["epochs"] == 3

    resumed = _run(replace(run, knobs={}), tiny3d, ["--c"], timeout=600)  # a plain shell: no knob of the run
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    logs = _fold_logs(fold)
    assert "has no checkpoint of this run yet" in logs and "settings of the run being started again" in logs
    final = fold / "checkpoint_final.pth"
    assert torch.load(final, map_location="cpu", weights_only=False)["current_epoch"] == 3
    assert _logged(final, "lrs") == pytest.approx(poly_learning_rates(3), rel=1e-9)
    assert (fold / "nnprog_run.json").read_text() == recorded, "the record keeps what it held"


def test_changed_checkpoint_content_is_caught_by_continue_validation_and_verify(tiny3d, tmp_path):
    """Issue #20: 64 bytes changed inside a checkpoint's tensor data (torch loads it without a word): --c continues
    from an intact checkpoint, --val stops naming the file, `nnprog verify` names it before a prediction."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "4", "NNPROG_SAVE_EVERY": "1"})
    log = tmp_path / "train.log"
    train(run, tiny3d.folders, log, stop_when=_started_epoch(2))
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    flip_tensor_bytes(fold / "checkpoint_latest.pth")
    train(run, tiny3d.folders, log, extra=["--c"])
    logs = _fold_logs(fold)
    assert "checkpoint_latest.pth does not match the sha256 in checkpoint_latest.pth.nnprog.json" in logs
    assert "Continuing from checkpoint_best.pth (epoch" in logs
    final = fold / "checkpoint_final.pth"
    assert torch.load(final, map_location="cpu", weights_only=False)["current_epoch"] == 4
    assert _logged(final, "lrs") == pytest.approx(poly_learning_rates(4))

    flip_tensor_bytes(final)
    validation = _run(run, tiny3d, ["--val"])
    assert validation.returncode != 0 and "Traceback" not in validation.stderr, validation.stderr[-3000:]
    assert "nnUNetv2_train: error: cannot use " in validation.stderr
    assert "checkpoint_final.pth does not match the sha256 in checkpoint_final.pth.nnprog.json" in validation.stderr
    verify = subprocess.run([sys.executable, "-m", "nnunet_progressive.cli.main", "verify", str(fold.parent)],
                            capture_output=True, text=True)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert f"damaged    {final}: checkpoint_final.pth does not match" in verify.stdout
    assert f"verified   {fold / 'checkpoint_best.pth'}" in verify.stdout

    # nnprog predict: nnUNetv2_predict's arguments, the checkpoints they load checked first
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    case = sorted((tiny3d.folders.raw / tiny3d.dataset_name / "imagesTr").glob("*_0000.nii.gz"))[0]
    shutil.copy(case, inputs / case.name)
    command = [sys.executable, "-m", "nnunet_progressive.cli.main", "predict", "-i", str(inputs), "-o", str(outputs),
               "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-tr", run.trainer, "-p", tiny3d.plans, "-f", "0",
               "-device", "cpu", "-npp", "0", "-nps", "0", "--disable_tta"]
    environment = run_environment(tiny3d.folders)
    refused = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert refused.stderr.startswith("nnprog predict: error: damaged checkpoint(s), nothing predicted: ")
    assert f"{final}: checkpoint_final.pth does not match" in refused.stderr and not outputs.exists()
    predicted = subprocess.run([*command, "-chk", "checkpoint_best.pth"], env=environment, capture_output=True,
                               text=True)
    assert predicted.returncode == 0, predicted.stdout[-3000:] + predicted.stderr[-3000:]
    assert f"nnprog predict: verified {fold / 'checkpoint_best.pth'}" in predicted.stderr
    assert (outputs / case.name.replace("_0000", "")).is_file()


def _trainer(ws, monkeypatch, continue_training: bool, plans: dict | None = None):
    """nnUNetTrainer_ConstantPatch of fold 4, in this process (as nnUNetv2_train builds it)."""
    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_ConstantPatch

    for key, value in {**ws.folders.environment({}), "nnUNet_n_proc_DA": "0", **FAST, "NNPROG_EPOCHS": "2"}.items():
        monkeypatch.setenv(key, value)
    plans = plans or ws.plans_json()
    plans["continue_training"] = continue_training
    dataset_json = json.loads((ws.preprocessed_dataset / "dataset.json").read_text())
    return nnUNetTrainer_ConstantPatch(plans, "3d_fullres", 4, dataset_json, torch.device("cpu"))


def test_atomic_checkpoint_survives_a_failed_write(tiny3d, monkeypatch):
    """Finding 7, the cause: a write that dies half-way leaves the previous checkpoint intact."""
    trainer = _trainer(tiny3d, monkeypatch, continue_training=False)
    trainer.initialize()
    checkpoint = os.path.join(trainer.output_folder, "checkpoint_latest.pth")
    trainer.current_epoch = 0
    trainer.save_checkpoint(checkpoint)

    def dies_half_way(obj, target, *args, **kwargs):
        Path(target).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dies_half_way)
    trainer.current_epoch = 1
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(checkpoint)
    monkeypatch.undo()
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["current_epoch"] == 1
    assert json.loads(Path(checkpoint + ".nnprog.json").read_text())["current_epoch"] == 1
    assert not [p for p in Path(trainer.output_folder).iterdir() if p.name.endswith(".tmp")]


def test_changed_plans_refuse_to_continue(tiny3d, monkeypatch):
    """Run identity: the configuration's plans entry changed since the run started (e.g. planned again)."""
    trainer = _trainer(tiny3d, monkeypatch, continue_training=False)
    trainer.initialize()
    checkpoint = os.path.join(trainer.output_folder, "checkpoint_latest.pth")
    trainer.save_checkpoint(checkpoint)
    changed = tiny3d.plans_json()
    changed["configurations"]["3d_fullres"]["batch_size"] = 3
    with pytest.raises(RunStateError, match="plans entry of 3d_fullres in nnUNetPlans_small.json changed"):
        _trainer(tiny3d, monkeypatch, True, changed).load_checkpoint(checkpoint)


def test_neither_run_file_nor_sidecar_is_a_clear_error(tiny3d, monkeypatch):
    """Finding 2's last resort: without stored settings --c stops instead of taking the environment."""
    trainer = _trainer(tiny3d, monkeypatch, continue_training=False)
    trainer.initialize()
    checkpoint = os.path.join(trainer.output_folder, "checkpoint_latest.pth")
    trainer.save_checkpoint(checkpoint)
    resumed = _trainer(tiny3d, monkeypatch, continue_training=True)
    resumed.load_checkpoint(checkpoint)
    assert resumed.progressive_settings.epochs == 2 and resumed.num_epochs == 2
    for leftover in (resumed.run_file, Path(checkpoint + ".nnprog.json")):
        leftover.unlink()
    with pytest.raises(RunStateError, match="neither nnprog_run.json nor checkpoint_latest.pth.nnprog.json"):
        _trainer(tiny3d, monkeypatch, continue_training=True).load_checkpoint(checkpoint)


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("trainer", ["nnUNetTrainer_PGPS_Efficiency",  # fold 1: free
                                     pytest.param("nnUNetTrainer_ConstantPatch", marks=pytest.mark.long)])
def test_augmentation_workers_die_with_a_killed_training(tiny3d, tmp_path, trainer):
    """Finding 8: SIGKILL of ONLY the nnUNetv2_train process (not its group) ends its workers too."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, trainer, tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9", "NNPROG_ITERATIONS": "50"})
    log = tmp_path / "train.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(run.command(), env=run_environment(tiny3d.folders, run.knobs), stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not _started_epoch(0)(log.read_text()) and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        # polled, not a fixed wait: Efficiency rebuilds its training loader at every stage switch (each epoch
        # here), and between the old workers' end and the new ones' start only the validation worker lives
        workers = _children(process.pid)
        while len(workers) < 2 and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
            workers = _children(process.pid)
        assert len(workers) >= 2, f"expected augmentation workers, found {workers}: {log.read_text()[-2000:]}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.time() + 15
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed training"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while text not in (log.read_text() if log.exists() else "") and time.time() < deadline:
        assert process.poll() is None, f"ended before {text!r}: {log.read_text()[-2000:]}"
        time.sleep(0.1)
    assert text in log.read_text(), f"no {text!r} within {timeout} s"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_nothing_of_a_run_outlives_a_killed_runner(tiny3d, tmp_path):
    """Issue #20: SIGKILL of the process that runs nnUNetv2_train through the runner (`nnprog benchmark run`,
    `nnprog demo`) ends the training and its workers, though they run in a session of their own."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "9", "NNPROG_ITERATIONS": "50"})
    log = tmp_path / "train.log"
    code = ("import pickle, sys\n"
            "from nnunet_progressive.nnunet.orchestration.runner import train\n"
            "train(*pickle.loads(bytes.fromhex(sys.argv[1])))\n")
    runner = subprocess.Popen([sys.executable, "-c", code, pickle.dumps((run, tiny3d.folders, log)).hex()])
    started: set[int] = set()
    try:
        _wait_for(log, ": Epoch 0", runner)
        time.sleep(2)
        started = descendants(runner.pid)
        trainings = [pid for pid in started if "nnUNetv2_train" in command_line(pid)]  # the training and its workers
        assert len(trainings) >= 3, {pid: command_line(pid) for pid in started}
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        assert not left_alive(started, timeout=30), "the training or its workers outlived the killed runner"
    finally:
        kill_all({runner.pid} | started)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux only")
def test_nothing_outlives_a_training_killed_in_its_final_validation(tiny3d, tmp_path):
    """Issue #20: SIGKILL of the training while nnU-Net's final validation exports (a 'spawn' pool and
    multiprocessing's resource tracker, fresh interpreters) ends every process it started."""
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 2, "nnUNetTrainer_ConstantPatch", tiny3d.plans,
                      knobs={**FAST, "NNPROG_EPOCHS": "1", "NNPROG_FINAL_VALIDATION": "on"})
    log = tmp_path / "train.log"
    with open(log, "w") as handle:
        training = subprocess.Popen(run.command(), env=run_environment(tiny3d.folders, run.knobs), stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    try:
        _wait_for(log, ": predicting ", training)
        started = descendants(training.pid)
        commands = [command_line(pid) for pid in started]
        assert any("spawn_main" in c for c in commands) and any("resource_tracker" in c for c in commands), commands
        os.kill(training.pid, signal.SIGKILL)
        training.wait()
        assert not left_alive(started, timeout=30), "processes of the validation outlived the killed training"
    finally:
        kill_all({training.pid} | started)
