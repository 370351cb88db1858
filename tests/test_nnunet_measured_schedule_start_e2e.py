"""NNPROG_MEASURED_SCHEDULE=on without a profile of this device (issue 25): the run profiles its own stages at its
start through the real nnUNetv2_train on CPU, records the choice and leaves the profile for the next run."""
from __future__ import annotations

import json
import re

import pytest

from nnunet_progressive.core.records import MEASURED_SCHEDULE_JSON, profile_file_name
from nnunet_progressive.nnunet.hooks.measured_schedule import OWN_PROFILE
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, train

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainer_PGPS_Efficiency"


def test_a_run_without_a_matching_profile_profiles_itself(tiny3d, tmp_path):
    profile_file = tiny3d.preprocessed_dataset / profile_file_name(TRAINER, tiny3d.plans, "3d_fullres")
    profile_file.unlink(missing_ok=True)
    knobs = {"NNPROG_MEASURED_SCHEDULE": "on", "NNPROG_EPOCHS": "9", "NNPROG_ITERATIONS": "2",
             "NNPROG_VAL_ITERATIONS": "1", "NNPROG_FINAL_VALIDATION": "off"}
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, TRAINER, tiny3d.plans, knobs=knobs)
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    try:
        train(run, tiny3d.folders, tmp_path / "train.log")
        written = json.loads(profile_file.read_text())
    finally:
        profile_file.unlink(missing_ok=True)
    record = json.loads((fold / MEASURED_SCHEDULE_JSON).read_text())
    assert record["source"] == OWN_PROFILE and record["profile"] == written
    assert written["device"] == "cpu" and len(written["stages"]) == 9
    assert all(s["loader_seconds"] is None and s["network_iterations"] >= 2 for s in written["stages"])
    assert record["kept_stages"][-1] == 8 and record["predicted_time_ratio"]["network_only"] <= 1.0
    curriculum = json.loads((fold / "curriculum.json").read_text())
    assert len(curriculum["schedule"]["stages"]) == len(record["kept_stages"]) and curriculum["epochs_done"] == 9
    logs = "\n".join(p.read_text() for p in sorted(fold.glob("training_log_*.txt")))
    assert re.search(r"Measured schedule: profiling 9 stages \(network only\) within 2% of the run's expected", logs)
    assert re.search(r"Measured schedule: profiled in [\d.]+ s, [\d.]+% of the run's expected", logs)
    assert f"Stages chosen from {OWN_PROFILE}: measured schedule:" in logs
