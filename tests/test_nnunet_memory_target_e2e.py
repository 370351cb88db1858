"""NNPROG_MEMORY_TARGET end to end on CPU: through the real nnUNetv2_train and `nnprog schedule`, tiny generated data.

The peak check needs CUDA; on CPU the run logs that the target went through the estimate only."""
from __future__ import annotations

import json
import subprocess

import pytest
from cli_command import NNPROG
from training_logs import everything_under, interrupt_at_epoch, one_start_error

from nnunet_progressive.core.knobs import settings_from_env
from nnunet_progressive.nnunet.hooks.memory_target import planned_stage_memory
from nnunet_progressive.nnunet.orchestration.runner import TrainingRun, run_environment, train
from nnunet_progressive.pgps.memory_target import GIB, memory_target_budget
from nnunet_progressive.pgps.schedule import build_schedule

pytestmark = pytest.mark.e2e

TRAINER = "nnUNetTrainer_PGPS_Performance"
# 3 stages (16x32x32, 24x32x32, 32^3), one epoch each, 2 iterations
FAST = {"NNPROG_EPOCHS": "3", "NNPROG_ITERATIONS": "2", "NNPROG_VAL_ITERATIONS": "1",
        "NNPROG_FINAL_VALIDATION": "off", "NNPROG_MIN_PATCH": "16,32,32"}


def _planned_memory(ws):
    """The estimate of the tiny plan's planned stage, as the trainer computes it."""
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class

    trainer_class = find_trainer_class(TRAINER)
    plans_manager = PlansManager(ws.plans_json())
    configuration = plans_manager.get_configuration(ws.configuration)
    dataset_json = json.loads((ws.preprocessed_dataset / "dataset.json").read_text())
    inputs = determine_num_input_channels(plans_manager, configuration, dataset_json)
    outputs = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    rule = trainer_class.network_patch_rule(configuration, inputs, outputs)
    return planned_stage_memory(trainer_class, plans_manager, configuration, inputs, outputs, rule,
                                settings_from_env(trainer_class.default_settings, environ=FAST), "tiny")


def _target_for(memory, factor: float) -> str:
    """The target (GiB, as text) that leaves ``factor`` x the planned activations after the fixed part."""
    return f"{(memory.fixed_bytes + factor * memory.activation_bytes) / GIB:.9f}"


def _expected_batches(ws, factor: float) -> list[int]:
    config = ws.plans_json()["configurations"][ws.configuration]
    schedule = build_schedule(config["patch_size"], config["architecture"]["arch_kwargs"]["strides"],
                              config["batch_size"], 3, mode="performance", min_patch=(16, 32, 32),
                              batch_budget_factor=factor)
    return [stage.batch_size for stage in schedule.stages]


def test_batches_follow_the_memory_target_in_training_and_in_nnprog_schedule(tiny3d, tmp_path):
    memory = _planned_memory(tiny3d)
    assert memory.fixed_bytes > 0 and memory.activation_bytes > 0
    target = _target_for(memory, 2.5)
    factor = memory_target_budget(memory, float(target))
    assert factor == pytest.approx(2.5, rel=1e-6)
    expected = _expected_batches(tiny3d, factor)
    assert expected == [10, 6, 5] and _expected_batches(tiny3d, 1.0) == [4, 2, 2]

    knobs = {**FAST, "NNPROG_MEMORY_TARGET": target}
    shown = subprocess.run([*NNPROG, "schedule", "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-p",
                            tiny3d.plans, "-tr", TRAINER], capture_output=True, text=True,
                           env={**tiny3d.folders.environment(), **knobs})
    assert shown.returncode == 0, shown.stderr
    assert f"'NNPROG_MEMORY_TARGET': {float(target)}" in shown.stdout, shown.stdout
    for patch, batch in zip(("16x32x32", "24x32x32", "32x32x32"), expected):
        assert any(line.split()[1:3] == [patch, str(batch)] for line in shown.stdout.splitlines()), shown.stdout

    for transformer in ("nnUNetTrainer_TinyUNETR_PGPS_Performance", "nnUNetTrainer_TinyPrimus_PGPS_Performance"):
        # their estimate: batch x sample_cost, and their weights counted on the meta device
        other = subprocess.run([*NNPROG, "schedule", "-d", str(tiny3d.dataset_id), "-c", "3d_fullres", "-p",
                                tiny3d.plans, "-tr", transformer], capture_output=True, text=True,
                               env={**tiny3d.folders.environment(), "NNPROG_EPOCHS": "20", "NNPROG_MEMORY_TARGET": "2"})
        assert other.returncode == 0 and "'NNPROG_MEMORY_TARGET': 2.0" in other.stdout, other.stdout + other.stderr

    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, TRAINER, tiny3d.plans, knobs=knobs)
    train(run, tiny3d.folders, tmp_path / "train.log")
    fold = run.output_folder(tiny3d.folders, tiny3d.dataset_name)
    curriculum = json.loads((fold / "curriculum.json").read_text())
    assert [stage["batch_size"] for stage in curriculum["schedule"]["stages"]] == expected
    assert [stage["samples_per_batch"] for stage in curriculum["stages"]] == expected
    assert curriculum["settings"]["memory_target"] == float(target)
    assert curriculum["settings"]["batch_budget"] == 1.0, "the knob's record is the run's, not the derived factor"
    record = json.loads((fold / "nnprog_run.json").read_text())
    assert json.dumps(record).count('"memory_target": ' + str(float(target))) >= 1
    text = (tmp_path / "train.log").read_text()
    assert f"Memory target {float(target):g} GiB: planned stage estimated at" in text
    assert "voxel budget 2.500 x the planned footprint = (target - fixed) / planned activations" in text
    assert "Memory target applied through the estimate only: the peak cannot be measured on cpu" in text


@pytest.mark.long
def test_continued_run_keeps_its_memory_target_in_a_plain_shell(tiny3d, tmp_path):
    """--c with no knob in the environment: the run's stored target still sizes the batches."""
    from dataclasses import replace

    memory = _planned_memory(tiny3d)
    target = _target_for(memory, 2.5)
    expected = _expected_batches(tiny3d, memory_target_budget(memory, float(target)))
    run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 1, TRAINER, tiny3d.plans,
                      knobs={**FAST, "NNPROG_MEMORY_TARGET": target, "NNPROG_SAVE_EVERY": "1"})
    log = tmp_path / "train.log"
    fold, resume_epoch = interrupt_at_epoch(run, tiny3d.folders, tiny3d.dataset_name, log, 2)
    assert resume_epoch in (1, 2), resume_epoch
    started = log.read_text()
    train(replace(run, knobs={}), tiny3d.folders, log, extra=["--c"])
    resumed = log.read_text()[len(started):]
    assert "voxel budget 2.500 x the planned footprint" in resumed
    curriculum = json.loads((fold / "curriculum.json").read_text())
    assert curriculum["settings"]["memory_target"] == float(target)
    assert [stage["batch_size"] for stage in curriculum["schedule"]["stages"]] == expected
    assert [stage["samples_per_batch"] for stage in curriculum["stages"]] == expected


def test_a_target_the_planned_stage_does_not_fit_stops_the_start_and_leaves_nothing(tiny3d):
    memory = _planned_memory(tiny3d)
    small = f"{0.9 * memory.total_bytes / GIB:.9f}"
    for knobs, fragments in (
            ({"NNPROG_MEMORY_TARGET": small}, [f"NNPROG_MEMORY_TARGET={float(small):g} GiB is too small for "
                                               f"{TRAINER} on 3d_fullres", "Efficiency mode"]),
            ({"NNPROG_MEMORY_TARGET": "40", "NNPROG_BATCH_BUDGET": "2"},
             ["NNPROG_MEMORY_TARGET=40 and NNPROG_BATCH_BUDGET=2 are both set", "unset one of them"])):
        run = TrainingRun(str(tiny3d.dataset_id), "3d_fullres", 0, TRAINER, tiny3d.plans, knobs={**FAST, **knobs})
        result = subprocess.run(run.command(), env=run_environment(tiny3d.folders, run.knobs, run.device),
                                capture_output=True, text=True, timeout=600)
        error = one_start_error(result)
        assert all(fragment in error for fragment in fragments), error
        assert everything_under(tiny3d.folders.results) == [], "no dataset, trainer or fold folder, no log"
