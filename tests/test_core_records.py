"""The record models are the one reader and writer of the package's files: typed parts, schema versions, and
files of the previous version still read."""
from __future__ import annotations

import json
import math

import pytest

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import (
    CheckpointState,
    Curriculum,
    DiceCheck,
    FineTuningState,
    PairCacheFile,
    RunSummary,
    read_json_object,
    read_record,
    write_record,
)

# a sidecar as version 0.1 wrote it (atomic_write_json of the mixins' dict): no schema_version
OLD_SIDECAR = {
    "current_epoch": 3, "run_id": "r1", "trainer": "nnUNetTrainer_Finetune_PDL_StopAtDice", "package_version": "0.1.0",
    "settings": {"epochs": 3}, "ended": False, "train_seconds": {"0": 1.5, "1": 1.25}, "untimed_seconds": {"1": 0.5},
    "augmentation_seconds": {"0": [0.25, 2]}, "switch_seconds": {"0": 0.1},
    "throughput": {"0": {"iterations": 2, "samples": 4, "step_seconds": 0.5, "workers": 1, "augment_on": "workers"}},
    "dice_checks": [{"epoch": 1, "train_wall_seconds": 2.0, "check_seconds": 0.5, "dice": float("nan"),
                     "dice_per_class": [0.1, 0.2], "stage": "set1"}],
    "set1": ["case_1", "case_0"],
    "finetune": {"recipe": "head_first", "pretrained_weights": "/x/adapted.pth",
                 "parameter_statuses": {"encoder.w": "loaded", "seg.w": "head"}, "schedule": {"phases": []}},
    "sha256": "ab", "some_future_key": 1,
}


def test_a_sidecar_of_the_previous_version_reads_into_typed_parts(tmp_path):
    path = tmp_path / "checkpoint_latest.pth.nnprog.json"
    path.write_text(json.dumps(OLD_SIDECAR, indent=2))
    state = read_record(path, CheckpointState)
    assert state.schema_version == 0 and state.finetune == FineTuningState(
        recipe="head_first", pretrained_weights="/x/adapted.pth",
        parameter_statuses={"encoder.w": "loaded", "seg.w": "head"}, schedule={"phases": []})
    assert state.augmentation_seconds == {"0": (0.25, 2)} and state.set1 == ["case_1", "case_0"]
    assert isinstance(state.dice_checks[0], DiceCheck) and math.isnan(state.dice_checks[0].dice)
    assert state.throughput["0"]["iterations"] == 2 and isinstance(state.throughput["0"]["iterations"], int)
    assert state.throughput["0"]["step_seconds"] == 0.5 and state.throughput["0"]["augment_on"] == "workers"
    # written again: the same content (NaN stays NaN, unknown keys kept), now with the schema version
    write_record(path, state)
    again = json.loads(path.read_text())
    assert again["schema_version"] == CheckpointState.SCHEMA_VERSION
    assert math.isnan(again["dice_checks"][0]["dice"]) and again["some_future_key"] == 1
    assert {k: v for k, v in again.items() if k not in ("schema_version", "dice_checks")} == {
        k: v for k, v in OLD_SIDECAR.items() if k != "dice_checks"}


def test_a_sidecar_without_parts_reads_with_empty_ones(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"current_epoch": 1}))
    state = read_record(path, CheckpointState)
    assert state.finetune is None and state.set1 is None and state.dice_checks == [] and state.train_seconds == {}


def test_a_part_of_the_wrong_type_names_the_file_and_key(tmp_path):
    path = tmp_path / "checkpoint_best.pth.nnprog.json"
    path.write_text(json.dumps({"current_epoch": 1, "finetune": {"recipe": "x", "parameter_statuses": [1]}}))
    with pytest.raises(ProgressiveConfigError, match=r"checkpoint_best.pth.nnprog.json.*finetune.parameter_statuses"):
        read_record(path, CheckpointState)


@pytest.mark.parametrize("model, data", [
    (CheckpointState, {"current_epoch": 1}),
    (RunSummary, {"trainer": "t", "epochs_done": 1, "num_epochs": 1, "num_iterations_per_epoch": 1,
                  "train_wall_seconds": 1.0}),
    (Curriculum, {"trainer": "t", "mode": "efficiency", "schedule": {}}),
])
def test_a_file_of_a_newer_layout_is_refused_with_the_fix(tmp_path, model, data):
    path = tmp_path / "record.json"
    path.write_text(json.dumps({**data, "schema_version": model.SCHEMA_VERSION + 1}))
    with pytest.raises(ProgressiveConfigError, match=r"record.json.*newer version of nnunet-progressive.*pip install"):
        read_record(path, model)


def test_run_summary_and_curriculum_of_the_previous_version_still_read(tmp_path):
    summary = {"trainer": "nnUNetTrainer_PGPS_Efficiency", "package_version": "0.1.0", "nnunetv2_version": "2.8.1",
               "torch_version": "2.9", "device": "cpu", "gpu_name": None, "epochs_done": 3, "num_epochs": 3,
               "num_iterations_per_epoch": 2, "train_wall_seconds": 10.0, "train_iteration_seconds": 8.0,
               "peak_gpu_memory_bytes": None, "settings": {"epochs": 3},
               "augmentation": {"on": "workers", "device": None, "seconds_per_batch": None, "batches": 0,
                                "measured": ""}}
    (tmp_path / "run_summary.json").write_text(json.dumps(summary))
    assert read_record(tmp_path / "run_summary.json", RunSummary).train_iteration_seconds == 8.0
    curriculum = {"package_version": "0.1.0", "trainer": "t", "mode": "rpss", "settings": {},
                  "num_iterations_per_epoch": 2, "epochs_done": 3, "schedule": {"patch_pool": [[8, 8, 8]]},
                  "stages": [], "wall_seconds": 3.0, "train_seconds": 2.0, "switch_seconds": {"0": 0.5},
                  "total_switch_seconds": 0.5, "throughput": {"loader_samples_per_second": 1.0}}
    (tmp_path / "curriculum.json").write_text(json.dumps(curriculum))
    record = read_record(tmp_path / "curriculum.json", Curriculum)
    assert record.switch_seconds == {"0": 0.5} and record.throughput == {"loader_samples_per_second": 1.0}


def test_records_that_refuse_nan_keep_the_old_file(tmp_path):
    path = tmp_path / "x.pairs.json"
    good = PairCacheFile(format=1, settings_key="k", pairs=[
        {"fixed": "a", "moving": "b", "values": {"mse": 1.0}, "registration_ok": True}])
    write_record(path, good)
    with pytest.raises(ValueError):
        write_record(path, PairCacheFile(format=1, settings_key="k", pairs=[
            {"fixed": "a", "moving": "b", "values": {"mse": float("nan")}, "registration_ok": True}]))
    assert read_record(path, PairCacheFile) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pairs.json"]


def test_nnunet_json_files_read_with_the_same_errors(tmp_path):
    assert read_json_object(tmp_path / "debug.json", missing_ok=True) is None
    (tmp_path / "debug.json").write_text("{not json")
    with pytest.raises(ProgressiveConfigError, match=r"debug.json is not valid JSON.*delete it"):
        read_json_object(tmp_path / "debug.json")
