"""`nnprog profile` and NNPROG_MEASURED_SCHEDULE=on through the real commands on CPU (issue 25): the profile record,
a run that takes its stages from it, killed with SIGKILL, and `--c` after the profile file changed."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from nnunet_progressive.core.records import MEASURED_SCHEDULE_JSON, profile_file_name
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, run_environment, train
from nnunet_progressive.pgps.profile import stages_worth_training

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainer_PGPS_Efficiency"
# a device with a fixed cost per step: the rule keeps stages 1, 5 and 8 of the 9 (see tests/test_pgps_profile.py)
FIXED_COST = [0.09, 0.09, 0.095, 0.10, 0.10, 0.105, 0.11, 0.115, 0.12]
KNOBS = {"NNPROG_MEASURED_SCHEDULE": "on", "NNPROG_EPOCHS": "9", "NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1",
         "NNPROG_SAVE_EVERY": "1", "NNPROG_FINAL_VALIDATION": "off"}


def test_profile_command_then_measured_schedule_survives_kill_and_changed_profile(tiny3d, tmp_path):
    profile_file = tiny3d.preprocessed_dataset / profile_file_name(TRAINER, tiny3d.plans, "3d_fullres")
    env = run_environment(tiny3d.folders)
    command = ["nnprog", "profile", "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-p", tiny3d.plans, "-tr",
               TRAINER, "-device", "cpu", "--seconds-per-stage", "0.5", "--total-seconds", "5", "--plot",
               str(tmp_path / "profile.png")]
    try:
        result = subprocess.run(command, env={**env, "NNPROG_MEASURED_SCHEDULE": "on"}, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert re.search(r"^\s+9\s+32x32x32\s+2\s", result.stdout, re.M), result.stdout  # every stage, planned last
        assert "time relative to constant patch:" in result.stdout and "voxel ideal 0.38" in result.stdout
        assert "measured schedule:" in result.stdout and (tmp_path / "profile.png").stat().st_size > 0
        assert not list(tiny3d.folders.results.glob("*")), "the profile trains nothing into nnUNet_results"
        profile = json.loads(profile_file.read_text())
        assert profile["device"] == "cpu" and profile["torch_version"] and profile["nnunetv2_version"]
        assert [s["patch_size"] for s in profile["stages"]][-1] == [32, 32, 32] and len(profile["stages"]) == 9
        assert all(s["network_seconds"] > 0 and s["loader_seconds"] > 0 and s["network_iterations"] >= 2
                   for s in profile["stages"])

        # the run takes its stages from this device's profile (its times set here, so the choice is known)
        for stage, seconds in zip(profile["stages"], FIXED_COST, strict=True):
            stage["network_seconds"] = seconds
        profile_file.write_text(json.dumps(profile))
        kept = stages_worth_training(FIXED_COST)
        assert kept == [1, 5, 8]
        run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, TRAINER, tiny3d.plans, knobs=KNOBS)
        fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
        log = tmp_path / "train.log"
        train(run, tiny3d.folders, log, stop_when=lambda text: re.search(r": Epoch 4\s*$", text, re.M) is not None)
        assert not (fold / "checkpoint_final.pth").exists(), "the run must have been killed"
        record = json.loads((fold / MEASURED_SCHEDULE_JSON).read_text())
        assert record["kept_stages"] == kept and record["source"] == str(profile_file)
        assert record["run_id"] == json.loads((fold / "nnprog_run.json").read_text())["run_id"]
        assert record["predicted_time_ratio"]["network_only"] <= 1.0

        # the profile file changes (time now follows voxels: every stage would be kept); --c keeps the run's stages
        for stage in profile["stages"]:
            stage["network_seconds"] = 1e-6 * stage["batch_size"] * stage["patch_size"][0] * stage["patch_size"][1] \
                * stage["patch_size"][2]
        profile_file.write_text(json.dumps(profile))
        train(run, tiny3d.folders, log, extra=["--c"])
    finally:
        profile_file.unlink(missing_ok=True)
    curriculum = json.loads((fold / "curriculum.json").read_text())
    stages = curriculum["schedule"]["stages"]
    assert [s["patch_size"] for s in stages] == [profile["stages"][i]["patch_size"] for i in kept]
    assert [(s["first_epoch"], s["last_epoch"]) for s in stages] == [(0, 2), (2, 6), (6, 9)]
    assert curriculum["epochs_done"] == 9 and (fold / "checkpoint_final.pth").is_file()
    assert json.loads((fold / MEASURED_SCHEDULE_JSON).read_text()) == record, "--c never rewrites the choice"
    logs = "\n".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))
    assert f"Measured schedule of the run ({MEASURED_SCHEDULE_JSON}, from {profile_file})" in logs
    assert "Continuing at epoch" in logs and "PGPS stage 2/3 | patch 24x24x24" in logs
