"""The papers' protocol in the benchmark report: per-case Wilcoxon, spread across seeds, Dice gain against the
foreground share, GPU hours and energy (known answers, cross-checked with scipy.stats), and the report of a
seeded 2-fold x 2-seed benchmark run with the runner (FakeTrain)."""
from __future__ import annotations

import csv
import json
import math
import statistics

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import stats
from test_benchmark_run import DATASET, TRAINERS, FakeEnergyCounter, FakeTrain, workspace, write_spec  # noqa: F401

from nnunet_progressive.benchmark import execution as bench_execution
from nnunet_progressive.benchmark import run as bench_run
from nnunet_progressive.benchmark.imbalance import (
    ForegroundShare,
    foreground_share,
    label_voxel_counts,
    load_foreground,
    measure_foreground,
)
from nnunet_progressive.benchmark.protocol import (
    ALL_TASKS,
    MIN_REFERENCE_SD,
    CaseDice,
    cost_table,
    imbalance_correlation,
    imbalance_table,
    per_case_tests,
    seed_spread,
)
from nnunet_progressive.benchmark.report import RunRow, TaskTrainerRow, write_report
from nnunet_progressive.benchmark.results import per_case_dice
from nnunet_progressive.benchmark.spec import load_spec

REF, EFF = "ref", "eff"


def test_per_case_dice_from_nnunet_summary():
    summary = {"metric_per_case": [
        {"reference_file": "/raw/labelsTr/case_0.nii.gz", "metrics": {"1": {"Dice": 0.8}, "2": {"Dice": 0.6}}},
        {"reference_file": "/raw/labelsTr/case_1.nii.gz", "metrics": {"1": {"Dice": 0.9}, "2": {"Dice": math.nan}}},
        {"reference_file": "/raw/labelsTr/case_2.nii.gz", "metrics": {"1": {"Dice": math.nan}}},
    ]}
    assert per_case_dice(summary) == pytest.approx({"case_0.nii.gz": 0.7, "case_1.nii.gz": 0.9})
    assert per_case_dice({"foreground_mean": {"Dice": 0.5}}) == {}


def _cases(task, trainer, dice_per_seed):
    return [CaseDice(task, trainer, 0, seed, f"case_{i}", d) for seed, dices in enumerate(dice_per_seed)
            for i, d in enumerate(dices)]


def test_per_case_wilcoxon_averages_seeds_and_pairs_cases():
    ref = [0.70, 0.72, 0.65, 0.80, 0.60, 0.75, 0.68, 0.71]
    eff_seed0 = [r + d for r, d in zip(ref, (0.02, 0.04, -0.01, 0.03, 0.05, 0.01, 0.02, 0.06))]
    eff_seed1 = [r + d for r, d in zip(ref, (0.04, 0.02, 0.03, 0.01, 0.03, 0.03, 0.00, 0.02))]
    cases = _cases("A", REF, [ref]) + _cases("A", EFF, [eff_seed0, eff_seed1]) + _cases("B", REF, [ref[:6]]) + \
        _cases("B", EFF, [[r - 0.01 for r in ref[:6]]])
    tests = {t.task: t for t in per_case_tests(cases, [REF, EFF], REF)}
    assert set(tests) == {"A", "B", ALL_TASKS}
    differences = [(a + b) / 2 - r for a, b, r in zip(eff_seed0, eff_seed1, ref)]
    expected = stats.wilcoxon(differences)
    assert tests["A"].n_cases == 8 and tests["A"].better == 8 and tests["A"].worse == 0
    assert tests["A"].mean_difference == pytest.approx(statistics.fmean(differences))
    assert tests["A"].wilcoxon.p_value == pytest.approx(expected.pvalue)
    assert tests["A"].wilcoxon.statistic == pytest.approx(expected.statistic)
    pooled = differences + [(r - 0.01) - r for r in ref[:6]]
    assert tests[ALL_TASKS].n_cases == 14
    assert tests[ALL_TASKS].wilcoxon.p_value == pytest.approx(stats.wilcoxon(pooled).pvalue)
    assert tests["B"].worse == 6 and tests["B"].better == 0
    lone = per_case_tests(_cases("C", REF, [[0.5]]) + _cases("C", EFF, [[0.6]]), [REF, EFF], REF)
    assert lone[0].n_cases == 1 and "only 1 non-zero difference" in lone[0].wilcoxon.note


def _row(task, trainer, fold, seed, dice, gpu_hours=None, energy=None, dataset="D"):
    return RunRow(run_id=f"{task}{trainer}{fold}{seed}", task=task, dataset=dataset, configuration="3d_fullres",
                  plans="p", trainer=trainer, fold=fold, seed=seed, status="done", dice_mean=dice,
                  gpu_hours=gpu_hours, energy_joules=energy)


def test_seed_spread_per_fold_then_mean_and_against_the_reference():
    rows = [_row("A", REF, 0, s, d) for s, d in enumerate((0.70, 0.74, 0.78))] + \
        [_row("A", REF, 1, s, d) for s, d in enumerate((0.80, 0.80, 0.86))] + \
        [_row("A", EFF, 0, s, d) for s, d in enumerate((0.75, 0.76, 0.77))] + \
        [_row("A", EFF, 1, s, d) for s, d in enumerate((0.81, 0.82, 0.83))]
    spread = {s.trainer: s for s in seed_spread(rows, [REF, EFF], REF)}
    ref_std = (np.std([0.70, 0.74, 0.78], ddof=1) + np.std([0.80, 0.80, 0.86], ddof=1)) / 2
    assert spread[REF].seeds == 3 and spread[REF].folds == 2
    assert spread[REF].dice_std == pytest.approx(ref_std)
    assert spread[REF].dice_variance == pytest.approx((np.var([0.70, 0.74, 0.78], ddof=1)
                                                       + np.var([0.80, 0.80, 0.86], ddof=1)) / 2)
    assert spread[EFF].dice_std == pytest.approx(0.01)
    assert spread[EFF].std_vs_reference == pytest.approx(0.01 / ref_std)
    one_seed = seed_spread([_row("A", REF, 0, 0, 0.7)], [REF], REF)
    assert one_seed[0].folds == 0 and one_seed[0].dice_std is None


def test_no_ratio_to_a_reference_spread_below_the_floor():
    """Repeats of the reference that agree to the third decimal give no SD ratio (it would read thousands)."""
    rows = [_row("A", REF, 0, s, d) for s, d in enumerate((0.4871, 0.4872))] + \
        [_row("A", EFF, 0, s, d) for s, d in enumerate((0.49, 0.99))]
    spread = {s.trainer: s for s in seed_spread(rows, [REF, EFF], REF)}
    assert spread[REF].dice_std < MIN_REFERENCE_SD and spread[EFF].std_vs_reference is None
    steady = seed_spread([_row("A", REF, 0, s, d) for s, d in enumerate((0.48, 0.49))] + rows[2:], [REF, EFF], REF)
    assert [s.std_vs_reference for s in steady if s.trainer == EFF] == [pytest.approx(50.0)]  # SDs 0.354, 0.0071


def test_foreground_share_is_the_mean_over_cases():
    first = np.zeros((4, 4, 4), dtype=np.uint8)
    first[0, 0, :2] = 1  # 2 of 64
    first[1, 1, 1] = 2  # 1 of 64
    second = np.zeros((2, 4, 4), dtype=np.uint8)
    second[0, :2, :2] = 1  # 4 of 32
    assert label_voxel_counts(first) == {0: 61, 1: 2, 2: 1}
    share = foreground_share("Dataset9_X", [label_voxel_counts(first), label_voxel_counts(second)],
                             {"1": "organ", "2": "lesion"})
    assert share.foreground_share == pytest.approx((3 / 64 + 4 / 32) / 2)
    assert share.label_shares == pytest.approx({"1": (2 / 64 + 4 / 32) / 2, "2": (1 / 64) / 2})
    assert share.smallest_label == "lesion" and share.smallest_label_share == pytest.approx(1 / 128)


def _table_row(task, trainer, gain):
    return TaskTrainerRow(task=task, trainer=trainer, n_runs=1, dice_mean=0.8, dice_std=None, train_seconds=1.0,
                          relative_time=1.0, relative_dice_pct=gain, gpu_hours=None, epochs=1.0,
                          peak_gpu_memory_gib=None, is_reference=trainer == REF)


def test_imbalance_table_and_spearman_against_scipy():
    shares = {f"D{k}": ForegroundShare(dataset=f"D{k}", cases=3, foreground_share=s, label_shares={"1": s})
              for k, s in enumerate((0.001, 0.01, 0.05, 0.2, 0.4))}
    gains = (4.0, 2.5, 1.0, 1.5, -0.5)
    table = [_table_row(f"T{k}", REF, 0.0) for k in range(5)] + \
        [_table_row(f"T{k}", EFF, g) for k, g in enumerate(gains)] + [_table_row("T9", EFF, 9.0)]
    rows = imbalance_table(table, {f"T{k}": f"D{k}" for k in range(5)}, shares, REF)
    assert [r.task for r in rows] == ["T0", "T1", "T2", "T3", "T4"]  # rarest first; T9 has no share
    assert rows[0].relative_dice_pct == {EFF: 4.0}
    (correlation,) = imbalance_correlation(rows, [REF, EFF], REF)
    expected = stats.spearmanr([0.001, 0.01, 0.05, 0.2, 0.4], gains)
    assert correlation.spearman_rho == pytest.approx(expected.statistic) and correlation.spearman_rho < 0
    assert correlation.p_value == pytest.approx(expected.pvalue) and "rarer" in correlation.note
    (few,) = imbalance_correlation(rows[:2], [REF, EFF], REF)
    assert few.spearman_rho is None and "at least 3" in few.note


def test_cost_sums_gpu_hours_and_reported_energy():
    rows = [_row("A", REF, 0, 0, 0.7, gpu_hours=2.0, energy=3.6e6), _row("A", REF, 1, 0, 0.7, gpu_hours=1.0),
            _row("A", EFF, 0, 0, 0.7)]
    costs = {c.trainer: c for c in cost_table(rows, [REF, EFF])}
    assert costs[REF].gpu_hours == 3.0 and costs[REF].energy_kwh == pytest.approx(1.0)
    assert costs[REF].energy_runs == 1 and costs[REF].runs == 2
    assert costs[EFF].gpu_hours is None and costs[EFF].energy_kwh is None


def _write_raw_dataset(root, cases=3):
    """A raw nnU-Net dataset of 8^3 label maps, case k with k + 1 foreground voxels (label 1)."""
    raw = root / "nnunet" / "nnUNet_raw" / DATASET
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True)
    for k in range(cases):
        label = np.zeros((8, 8, 8), dtype=np.uint8)
        label.flat[:k + 1] = 1
        sitk.WriteImage(sitk.GetImageFromArray(label), str(raw / "labelsTr" / f"case_{k:03d}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(label.astype(np.float32)),
                        str(raw / "imagesTr" / f"case_{k:03d}_0000.nii.gz"))
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                                  "organ": 1}, "numTraining": cases, "file_ending": ".nii.gz"}))
    return raw


def test_measure_foreground_reads_the_raw_labels_with_nnunets_reader(tmp_path):
    share = measure_foreground(_write_raw_dataset(tmp_path), progress=False)
    assert share.cases == 3 and share.foreground_share == pytest.approx((1 + 2 + 3) / 3 / 512)
    assert share.smallest_label == "organ"


class PerCaseFakeTrain(FakeTrain):
    """FakeTrain whose validation has per-case metrics: PGPS is better on every case, and steadier over seeds."""

    def __call__(self, run, folders, log_file, extra=(), stop_when=None, timeout=3600):
        seconds = super().__call__(run, folders, log_file, extra, stop_when, timeout)
        seed = int(run.knobs["NNPROG_SEED"])
        offset = 0.05 if "PGPS" in run.trainer else 0.0
        wobble = (0.002 if "PGPS" in run.trainer else 0.02) * seed
        cases = [{"reference_file": f"/raw/labelsTr/case_{run.fold}{i}.nii.gz",
                  "metrics": {"1": {"Dice": 0.6 + 0.03 * i + offset + wobble}}} for i in range(4)]
        dice = statistics.fmean(c["metrics"]["1"]["Dice"] for c in cases)
        folder = run.output_folder(folders, DATASET)
        (folder / "validation" / "summary.json").write_text(json.dumps(
            {"foreground_mean": {"Dice": dice}, "mean": {"1": {"Dice": dice}}, "metric_per_case": cases}))
        return seconds


def test_report_of_a_seeded_run_has_the_protocol_sections(workspace, monkeypatch):  # noqa: F811
    """2 folds x 2 seeds x 2 trainers through the runner on a dataset with raw labels: the report gains the
    per-case test, the spread across seeds, the imbalance table and plot, and GPU hours and energy per run."""
    _write_raw_dataset(workspace)
    monkeypatch.setattr(bench_execution, "train", PerCaseFakeTrain())
    monkeypatch.setattr(bench_execution, "read_nvml_energy", FakeEnergyCounter())
    monkeypatch.setattr(bench_execution, "_gpu_name", lambda gpu: "H100")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = load_spec(write_spec(workspace, executor={"type": "local", "device": "cuda"}, folds=[0, 1], seeds=[0, 1],
                                seed_training=True))
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(outcome.records) == 8 and {r.status for r in outcome.records} == {"done"}
    assert load_foreground(spec.results_dir)[DATASET].foreground_share == pytest.approx(2 / 512)

    written = {p.name for p in write_report(spec.results_dir)}
    assert {"per_case_tests.csv", "seed_spread.csv", "imbalance.csv", "imbalance.png"} <= written
    report = (spec.results_dir / "report" / "report.md").read_text()
    for heading in ("### Per-case Wilcoxon test", "### Spread across seeds", "### Dice gain against foreground share",
                    "### GPU hours and energy"):
        assert heading in report
    out = spec.results_dir / "report"
    (test,) = csv.DictReader(open(out / "per_case_tests.csv"))
    assert test["trainer"] == TRAINERS[1] and test["n_cases"] == "8" and test["better"] == "8"
    assert float(test["mean_dice_difference"]) == pytest.approx(0.05 + 0.001 - 0.01)
    spread = {r["trainer"]: r for r in csv.DictReader(open(out / "seed_spread.csv"))}
    assert float(spread[TRAINERS[0]]["dice_std_across_seeds"]) == pytest.approx(0.02 / math.sqrt(2))
    assert float(spread[TRAINERS[1]]["std_vs_reference"]) == pytest.approx(0.1)
    (imbalance,) = csv.DictReader(open(out / "imbalance.csv"))
    assert float(imbalance["foreground_share"]) == pytest.approx(2 / 512)
    runs = list(csv.DictReader(open(out / "report.csv")))
    assert len(runs) == 8 and all(float(r["energy_joules"]) == pytest.approx(5.0) for r in runs)
    assert "| 2.000 |" not in report  # GPU h of the 4 runs of a trainer: 4 x 2 h (7200 s each) = 8.00
    assert "| 8.00 | 5.56e-06 | 4 of 4 |" in report  # 4 x 5 J of energy, in kWh
