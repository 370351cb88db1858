"""Benchmark report: tables, Wilcoxon test and files from synthetic records (known answers)."""
from __future__ import annotations

import csv
import json

import pytest

from nnunet_progressive.benchmark.report import (
    MAX_CLASSES_IN_TABLE,
    choose_reference,
    run_rows,
    summary_table,
    task_markdown,
    task_table,
    task_time_to_dice,
    trainer_order,
    wilcoxon_test,
    write_report,
)
from nnunet_progressive.cli.main import main

REF, EFF, PERF = "nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Efficiency", "nnUNetTrainer_PGPS_Performance"


def record(dataset, trainer, fold, dice, seconds, status="done", configuration="3d_fullres", checks=None):
    run_id = f"{dataset}__{configuration}__nnUNetPlans__{trainer}__fold{fold}__seed0"
    result = None
    if status == "done":
        result = {"dice_mean": dice, "dice_per_class": {"1": dice, "2": dice / 2}, "train_wall_seconds": seconds,
                  "train_wall_source": "run_summary", "epochs_done": 10, "num_epochs": 10,
                  "peak_gpu_memory_bytes": 2**30, "environment": {"gpu_name": "H100", "device": "cuda"},
                  "time_to_dice": None if checks is None else {"checks": checks}}
    return {"run_id": run_id, "dataset": dataset, "configuration": configuration, "plans": "nnUNetPlans",
            "trainer": trainer, "fold": fold, "seed": 0, "status": status, "runner_wall_seconds": seconds,
            "gpus_used": 1, "gpu_hours": None if seconds is None else seconds / 3600, "result": result,
            "environment": {"gpu_name": "H100", "device": "cuda", "nnunetv2_version": "2.8.1"}}


def paper_like_records(num_tasks=6):
    """Reference 0.80 Dice in 100 s (two folds: 0.79, 0.81); Efficiency equal Dice in 44 s; Performance
    0.80 + 0.01 k in 89 s on task k."""
    records = []
    for k in range(1, num_tasks + 1):
        dataset = f"Dataset{k:03d}_Task{k}"
        records += [record(dataset, REF, 0, 0.79, 100.0), record(dataset, REF, 1, 0.81, 100.0),
                    record(dataset, EFF, 0, 0.80, 44.0), record(dataset, EFF, 1, 0.80, 44.0),
                    record(dataset, PERF, 0, 0.80 + 0.01 * k, 89.0), record(dataset, PERF, 1, 0.80 + 0.01 * k, 89.0)]
    return records


def test_choose_reference():
    assert choose_reference(["A", "nnUNetTrainer", "nnUNetTrainer_ConstantPatch_100epochs"]) == \
        "nnUNetTrainer_ConstantPatch_100epochs"
    assert choose_reference(["A", "nnUNetTrainer"]) == "nnUNetTrainer"
    assert choose_reference(["B", "A"]) == "B"
    assert choose_reference(["B", "A"], "A") == "A"
    with pytest.raises(ValueError, match="has no runs"):
        choose_reference(["B"], "A")


def test_task_table_known_answers():
    rows = run_rows(paper_like_records())
    trainers = trainer_order(rows, [REF, EFF, PERF])
    table = task_table(rows, trainers, REF)
    assert len(table) == 18
    first = {r.trainer: r for r in table if r.task == "Dataset001_Task1 3d_fullres"}
    assert first[REF].dice_mean == pytest.approx(0.80) and first[REF].dice_std == pytest.approx(0.0141421, 1e-4)
    assert first[REF].relative_time == 1.0 and first[REF].relative_dice_pct == pytest.approx(0.0)
    assert first[REF].is_reference and first[REF].n_runs == 2 and first[REF].peak_gpu_memory_gib == 1.0
    assert first[EFF].relative_time == pytest.approx(0.44) and first[EFF].relative_dice_pct == pytest.approx(0.0)
    assert first[PERF].relative_time == pytest.approx(0.89)
    assert first[PERF].relative_dice_pct == pytest.approx(1.25)  # 0.01 / 0.80
    assert first[PERF].gpu_hours == pytest.approx(89 / 3600)
    assert first[REF].dice_per_class == pytest.approx({"1": 0.80, "2": 0.40})


def test_mean_relative_dice_says_when_the_reference_dice_is_zero():
    records = paper_like_records(6)
    for r in records:
        if r["dataset"].startswith("Dataset001") and r["trainer"] == REF:
            r["result"]["dice_mean"] = 0.0
    table = task_table(run_rows(records), [REF, EFF, PERF], REF)
    efficiency = summary_table(table, [REF, EFF, PERF], REF)[0]
    assert (efficiency.n_tasks, efficiency.relative_dice_tasks, efficiency.better) == (6, 5, 1)
    assert efficiency.mean_relative_dice_pct == pytest.approx(0.0)
    assert efficiency.note.startswith("mean Δ Dice over 5 of 6 tasks")


def test_dice_per_class_named_and_shown_only_for_few_classes():
    named = paper_like_records(1)
    for r in named:
        r["result"]["class_names"] = {"1": "liver", "2": "tumour"}
    table = task_table(run_rows(named), [REF, EFF, PERF], REF)
    assert table[0].dice_per_class == pytest.approx({"liver": 0.80, "tumour": 0.40})
    text = task_markdown(table, table[0].task, ("s", 1.0))
    assert "| Dice per class |" in text and "liver 0.800, tumour 0.400" in text
    many = paper_like_records(1)
    for r in many:
        r["result"]["dice_per_class"] = {str(k): 0.5 for k in range(1, MAX_CLASSES_IN_TABLE + 2)}
    table = task_table(run_rows(many), [REF, EFF, PERF], REF)
    assert "Dice per class" not in task_markdown(table, table[0].task, ("s", 1.0))


def test_summary_mean_gain_and_wilcoxon_known_answers():
    rows = run_rows(paper_like_records())
    table = task_table(rows, [REF, EFF, PERF], REF)
    efficiency, performance = summary_table(table, [REF, EFF, PERF], REF)
    assert performance.n_tasks == 6
    assert performance.mean_relative_dice_pct == pytest.approx(1.25 * 3.5)
    assert performance.mean_relative_time == pytest.approx(0.89)
    assert (performance.better, performance.equal, performance.worse) == (6, 0, 0)
    # six positive differences: exact two-sided p = 2 / 2**6
    assert performance.wilcoxon.statistic == 0.0 and performance.wilcoxon.p_value == pytest.approx(0.03125)
    assert performance.wilcoxon.note == ""
    # all differences zero: no crash, p = 1
    assert (efficiency.better, efficiency.equal, efficiency.worse) == (0, 6, 0)
    assert efficiency.wilcoxon.p_value == 1.0 and "all paired differences are zero" in efficiency.wilcoxon.note


def test_wilcoxon_edge_cases():
    mixed = wilcoxon_test([0.01, -0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
    assert mixed.statistic == 2.0 and mixed.p_value == pytest.approx(6 / 128)
    few = wilcoxon_test([0.01, 0.02, 0.03])
    assert few.p_value == pytest.approx(0.25) and "little power" in few.note and "0.25" in few.note
    with_zero = wilcoxon_test([0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    assert with_zero.n == 7 and with_zero.p_value == pytest.approx(0.03125)
    assert "1 tied task(s) dropped" in with_zero.note
    empty = wilcoxon_test([])
    assert empty.p_value is None and "no task" in empty.note


def test_missing_reference_and_unfinished_runs():
    records = [record("Dataset001_A", EFF, 0, 0.7, 50.0), record("Dataset001_A", REF, 0, None, None, status="failed"),
               record("Dataset002_B", REF, 0, 0.8, 100.0), record("Dataset002_B", EFF, 0, 0.88, 50.0)]
    rows = run_rows(records)
    table = task_table(rows, [REF, EFF], REF)
    by_task = {(r.task, r.trainer): r for r in table}
    assert ("Dataset001_A 3d_fullres", REF) not in by_task
    assert by_task[("Dataset001_A 3d_fullres", EFF)].relative_time is None
    assert by_task[("Dataset002_B 3d_fullres", EFF)].relative_dice_pct == pytest.approx(10.0)
    (summary,) = summary_table(table, [REF, EFF], REF)
    assert summary.n_tasks == 1 and "little power" in summary.wilcoxon.note


def test_task_label_carries_plans_only_when_ambiguous():
    a = record("Dataset001_A", REF, 0, 0.8, 1.0)
    b = {**record("Dataset001_A", REF, 0, 0.8, 1.0), "plans": "nnUNetPlans_small", "run_id": "other"}
    assert {r.task for r in run_rows([a])} == {"Dataset001_A 3d_fullres"}
    assert {r.task for r in run_rows([a, b])} == {"Dataset001_A 3d_fullres nnUNetPlans",
                                                  "Dataset001_A 3d_fullres nnUNetPlans_small"}


def _results_dir(tmp_path, records, spec=None):
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    for r in records:
        (runs / f"{r['run_id']}.json").write_text(json.dumps(r))
    if spec is not None:
        (tmp_path / "results" / "spec.json").write_text(json.dumps(spec))
    return tmp_path / "results"


def test_write_report_files(tmp_path):
    records = paper_like_records(3)
    checks_ref = [{"train_wall_seconds": s, "dice": d} for s, d in ((20, 0.5), (40, 0.7), (60, 0.8))]
    checks_eff = [{"train_wall_seconds": s, "dice": d} for s, d in ((10, 0.6), (20, 0.8))]
    records[0]["result"]["time_to_dice"] = {"checks": checks_ref}
    records[2]["result"]["time_to_dice"] = {"checks": checks_eff}
    records.append(record("Dataset001_Task1", PERF, 2, None, None, status="failed"))
    results = _results_dir(tmp_path, records, {"trainers": [{"name": REF}, {"name": EFF}, {"name": PERF}],
                                                "reference_trainer": REF})
    written = write_report(results)
    names = {p.name for p in written}
    assert {"report.md", "report.csv", "tasks.csv", "summary.csv", "time_to_dice.csv", "dice_vs_time.png",
            "relative_time_dice.png", "time_to_dice_Dataset001_Task1_3d_fullres.png"} <= names
    for path in written:
        assert path.is_file() and path.stat().st_size > 0
    report = (results / "report" / "report.md").read_text()
    assert "Reference trainer: **nnUNetTrainer_ConstantPatch**" in report
    assert "### Dataset002_Task2 3d_fullres" in report and "little power" in report
    assert "## Time to Dice" in report and "## Runs not done" in report
    runs = list(csv.DictReader(open(results / "report" / "report.csv")))
    assert len(runs) == 19 and {"dice_class_1", "dice_class_2", "gpu_hours"} <= set(runs[0])
    summary = {r["trainer"]: r for r in csv.DictReader(open(results / "report" / "summary.csv"))}
    assert float(summary[PERF]["mean_relative_dice_pct"]) == pytest.approx(2.5)
    ttd = list(csv.DictReader(open(results / "report" / "time_to_dice.csv")))
    # one logged run per trainer: runs are labelled by trainer name
    at_08 = {r["run"]: r for r in ttd if r["threshold"] == "0.8"}
    assert at_08[EFF]["train_wall_seconds"] == "20.0"
    assert float(at_08[EFF]["ratio_to_reference"]) == pytest.approx(1 / 3)


def test_time_to_dice_pairs_each_repeat_with_the_reference_of_its_fold_and_seed():
    def checks(*pairs):
        return [{"train_wall_seconds": s, "dice": d} for s, d in pairs]

    task = "Dataset001_Task1"
    records = [record(task, REF, 0, 0.8, 100.0, checks=checks((40, 0.8))),
               record(task, REF, 1, 0.8, 100.0, checks=checks((80, 0.8))),
               record(task, EFF, 0, 0.8, 50.0, checks=checks((20, 0.8))),
               record(task, EFF, 1, 0.8, 50.0, checks=checks((60, 0.8))),
               record(task, PERF, 2, 0.8, 50.0, checks=checks((10, 0.8)))]
    runs, reference, (row,) = task_time_to_dice(run_rows(records), f"{task} 3d_fullres", REF, [0.8])
    assert reference == f"{REF} fold 0 seed 0"
    assert row.ratio[f"{EFF} fold 0 seed 0"] == pytest.approx(20 / 40)
    assert row.ratio[f"{EFF} fold 1 seed 0"] == pytest.approx(60 / 80), "fold 1 against the reference's fold 1"
    assert row.ratio[PERF] is None and row.reference[PERF] is None, "no reference run of fold 2"
    from nnunet_progressive.stopping.time_to_dice import table_csv, table_markdown

    markdown = table_markdown([row], reference)
    assert markdown.splitlines()[0].startswith(f"| Dice | {REF} fold 0 seed 0 (s) | {REF} fold 1 seed 0 (s) |")
    assert f"{EFF} fold 1 seed 0 / {REF} fold 1 seed 0" in markdown and "none (no reference run" in markdown
    assert f"{EFF} fold 1 seed 0,60.0,0.75,{REF} fold 1 seed 0" in table_csv([row], reference)


def test_report_of_some_trainers_only(tmp_path, capsys):
    results = _results_dir(tmp_path, paper_like_records(2))
    out = tmp_path / "only_eff"
    assert main(["benchmark", "report", str(results), "-o", str(out), "--trainers", f"{REF},{EFF}"]) == 0
    report = (out / "report.md").read_text()
    assert EFF in report and PERF not in report and f"only the runs of {REF}, {EFF} (--trainers)" in report
    assert main(["benchmark", "report", str(results), "--trainers", "nnUNetTrainer_Nope"]) == 2
    assert "--trainers: ['nnUNetTrainer_Nope'] ran in no run" in capsys.readouterr().err


def test_report_cli(tmp_path, capsys):
    results = _results_dir(tmp_path, paper_like_records(2))
    out = tmp_path / "rep"
    assert main(["benchmark", "report", str(results), "-o", str(out), "--reference", EFF]) == 0
    assert "Reference trainer: **nnUNetTrainer_PGPS_Efficiency**" in (out / "report.md").read_text()
    assert str(out / "report.md") in capsys.readouterr().out
    assert main(["benchmark", "report", str(tmp_path / "nothing")]) == 2
    assert "runs/<run_id>.json" in capsys.readouterr().err
    assert main(["benchmark", "report", str(results), "--reference", "Missing"]) == 2


def test_pgps_columns_and_plot_show_measured_against_ideal_time(tmp_path):
    records = paper_like_records(1)
    for r in records:
        r["result"]["train_iteration_seconds"] = r["result"]["train_wall_seconds"] * 0.8
        if r["trainer"] != REF:
            r["result"]["ideal_time_ratio"] = 0.4
            r["result"]["switch_seconds"] = 0.05 * r["result"]["train_wall_seconds"]
            r["result"]["curriculum"] = {"schedule": {"relative_compute": 0.4}}
    table = task_table(run_rows(records), [REF, EFF, PERF], REF)
    efficiency = {r.trainer: r for r in table}[EFF]
    assert efficiency.relative_iteration_time == pytest.approx(0.44) and efficiency.ideal_time_ratio == 0.4
    assert efficiency.switch_overhead == pytest.approx(0.05)
    text = task_markdown(table, table[0].task, ("s", 1.0))
    assert "| Rel. iteration time | Ideal ratio | Switch overhead (%) |" in text and "| 0.440 | 0.400 | 5.0 |" in text
    written = write_report(_results_dir(tmp_path, records))
    assert (tmp_path / "results" / "report" / "pgps_time_ratios.png") in written
    tasks = list(csv.DictReader(open(tmp_path / "results" / "report" / "tasks.csv")))
    assert float(tasks[1]["ideal_time_ratio"]) == 0.4
    plain = task_markdown(task_table(run_rows(paper_like_records(1)), [REF, EFF, PERF], REF),
                          table[0].task, ("s", 1.0))
    assert "Ideal ratio" not in plain  # no PGPS run: no PGPS columns


def test_labels_from_the_spec_and_the_ranking_time(tmp_path):
    """Two knob sets of one trainer are two columns named by their labels; PDL's ranking time is reported."""
    from nnunet_progressive.benchmark.spec import SpecTrainers

    spec = {"trainers": [{"name": REF}, {"name": EFF, "label": "share0.3", "knobs": {"NNPROG_GROWTH_SHARE": 0.3}},
                         {"name": EFF, "label": "share0.6", "knobs": {"NNPROG_GROWTH_SHARE": 0.6}}],
            "knobs": {"NNPROG_EPOCHS": 10}, "reference_trainer": REF}
    ids = {v.label: v.settings_id for v in SpecTrainers.model_validate(spec).variants()}
    records = []
    for label, trainer, dice in ((REF, REF, 0.8), ("share0.3", EFF, 0.7), ("share0.6", EFF, 0.9)):
        r = record("Dataset001_A", trainer, 0, dice, 50.0)
        r.update(run_id=f"{r['run_id']}__{label}", settings_id=ids[label])
        records.append(r)
    old = record("Dataset001_A", EFF, 0, 0.1, 50.0)
    records.append({**old, "run_id": "old", "settings_id": "00000000"})
    results = _results_dir(tmp_path, records, spec)
    (results / "prepared").mkdir()
    (results / "prepared" / "Dataset001_A.json").write_text(json.dumps({"dataset": "Dataset001_A",
                                                                         "rank_seconds": 12.5}))
    write_report(results)
    report = (results / "report" / "report.md").read_text()
    assert "| share0.3 | 1 | 0.7000 |" in report and "| share0.6 | 1 | 0.9000 |" in report
    assert "## Records left out" in report and "| old |" in report
    assert "| share0.3 | nnUNetTrainer_PGPS_Efficiency |" in report and "NNPROG_GROWTH_SHARE=0.3" in report
    assert "## Preparation" in report and "| Dataset001_A | 12.5 |" in report
    summary = {r["trainer"]: r for r in csv.DictReader(open(results / "report" / "summary.csv"))}
    assert set(summary) == {"share0.3", "share0.6"}
