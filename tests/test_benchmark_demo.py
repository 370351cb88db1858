"""`nnprog demo`: a short benchmark on the same runner, with the outputs the README promises."""
from __future__ import annotations

import pytest

from nnunet_progressive.benchmark.demo import (
    DEMO_PGPS_STAGES,
    DEMO_TRAINERS,
    DemoResult,
    demo_spec,
    results_table,
    speedup_text,
)
from nnunet_progressive.benchmark.results import load_records
from nnunet_progressive.cli.main import main
from nnunet_progressive.core.errors import ProgressiveConfigError


def test_demo_is_a_benchmark_spec(tmp_path):
    spec = demo_spec(tmp_path / "ws", epochs=18, iterations=12)
    assert spec.trainer_names == list(DEMO_TRAINERS) and spec.reference_trainer == DEMO_TRAINERS[0]
    assert spec.executor.device == "cpu" and spec.small_network is not None
    assert spec.folders().raw == (tmp_path / "ws" / "nnUNet_raw").resolve()
    assert spec.knobs == {"NNPROG_EPOCHS": "18", "NNPROG_ITERATIONS": "12", "NNPROG_VAL_ITERATIONS": "2"}
    assert len({v.settings_id for v in spec.variants()}) == 1  # both trainers: the same settings
    for epochs, iterations, preset, message in ((0, 12, "demo", "--epochs: expected an integer >= 1, got 0"),
                                                (18, -1, "demo", "--iterations"),
                                                (18, 12, "nope", "synthetic_preset: expected one of")):
        with pytest.raises(ProgressiveConfigError, match=message):
            demo_spec(tmp_path, epochs, iterations, preset)


def test_too_few_demo_epochs_stop_before_any_data_is_made(tmp_path, capsys):
    """`nnprog demo --epochs 3`: the demo's own words (its minimum), before a dataset is generated or planned."""
    assert main(["demo", "--workspace", str(tmp_path / "ws"), "--epochs", "3"]) == 2
    error = capsys.readouterr().err
    assert "--epochs 3 is too few" in error and "--epochs 9 or more" in error and "spec" not in error
    assert not (tmp_path / "ws").exists()


def test_demo_table_and_summary():
    results = [DemoResult("nnUNetTrainer_ConstantPatch", 100.0, 80.0, 0.5, {"1": 0.9, "2": 0.1}, None),
               DemoResult("nnUNetTrainer_PGPS_Efficiency", 60.0, 40.0, 0.55, {"1": 0.95, "2": 0.15}, 0.38)]
    table = results_table(results, {"1": "organ1", "2": "lesion"})
    assert "| Dice organ1 | Dice lesion |" in table
    assert "| nnUNetTrainer_PGPS_Efficiency | 40 | 0.50 | 0.38 | 0.550 | 0.950 | 0.150 |" in table
    assert speedup_text(results).startswith("PGPS Efficiency trained in 0.50x the time") and "+0.050" in speedup_text(
        results)


@pytest.mark.e2e
def test_demo_end_to_end_tiny(tmp_path, capsys, monkeypatch):
    """The demo command on the tiny3d preset, 9 epochs (one per PGPS stage) x 2 iterations (the real one: 18 x 12):
    the benchmark runner end to end (records, reuse of done runs, the report)."""
    from pathlib import Path

    from nnunet_progressive.core.heartbeat import HEARTBEAT_SECONDS_ENV

    monkeypatch.setenv(HEARTBEAT_SECONDS_ENV, "0.001")  # a heartbeat after every step (the runner's default: 2 s)
    workspace = tmp_path / "demo"
    arguments = ["demo", "--workspace", str(workspace), "--preset", "tiny3d", "--epochs", "9", "--iterations", "2"]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "| nnUNetTrainer_PGPS_Efficiency |" in out and "PGPS Efficiency trained in" in out
    text = (workspace / "demo_results.md").read_text()
    assert "8 generated cases of 32x32x32 voxels (preset `tiny3d`)" in text and "9 epochs x 2 iterations" in text
    assert (workspace / "demo_results.png").stat().st_size > 0
    assert (workspace / "results" / "runs").is_dir()
    # the runner's records (real nnUNetv2_plan_and_preprocess and nnUNetv2_train underneath)
    records = {r.trainer: r for r in load_records(workspace / "results")}
    assert set(records) == set(DEMO_TRAINERS)
    for trainer, record in records.items():
        result = record.result
        assert record.status == "done" and record.runner_wall_seconds > 0
        assert 0.0 <= result.dice_mean <= 1.0 and set(result.dice_per_class) == {"1", "2"}
        assert result.train_wall_source == "run_summary" and result.epochs_done == 9
        assert result.environment["trainer"] == trainer and result.environment["nnunetv2_version"]
        assert "seed_0" in record.fold_folder and "nnUNetPlans_small" in record.fold_folder
        assert "nnprog heartbeat: epoch 8 iteration 2/2" in Path(record.log_file).read_text()  # what ticks the bar
    curriculum = records["nnUNetTrainer_PGPS_Efficiency"].result.curriculum
    assert curriculum["epochs_done"] == 9
    assert len(curriculum["stages"]) == DEMO_PGPS_STAGES["tiny3d"]  # the table the early --epochs check reads
    assert "nnUNetv2_predict -i" in text and "-p nnUNetPlans_small" in text and "-device cpu" in text
    assert records["nnUNetTrainer_ConstantPatch"].result.curriculum is None

    assert main(arguments) == 0  # the runs are done: reused (one attempt each, below)
    assert [len(r.attempts) for r in load_records(workspace / "results")] == [1, 1]

    # the full benchmark report of the same records
    assert main(["benchmark", "report", str(workspace / "results")]) == 0
    report = workspace / "results" / "report"
    text = (report / "report.md").read_text()
    assert "Reference trainer: **nnUNetTrainer_ConstantPatch**" in text and "nnUNetTrainer_PGPS_Efficiency" in text
    for name in ("report.csv", "tasks.csv", "summary.csv", "dice_vs_time.png", "relative_time_dice.png",
                 "pgps_time_ratios.png"):
        assert (report / name).stat().st_size > 0
    assert "| Rel. iteration time | Ideal ratio | Switch overhead (%) |" in text  # from PGPS's curriculum.json
