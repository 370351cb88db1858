"""Benchmark runner: run status, idempotence, resume, executors (local, multi-GPU, submitit).

The real end-to-end run of the runner is `nnprog demo`'s test (test_benchmark_demo.py)."""
from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path

import pytest

from nnunet_progressive.benchmark import execution as bench_execution
from nnunet_progressive.benchmark import run as bench_run
from nnunet_progressive.benchmark.results import collect_run, load_records, read_record, record_path
from nnunet_progressive.benchmark.spec import load_spec
from nnunet_progressive.cli.main import main
from nnunet_progressive.core.errors import NnunetCommandError, ProgressiveConfigError
from nnunet_progressive.core.records import RUN_SUMMARY_JSON, RunSummary, write_record
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

DATASET = "Dataset777_Fake"
TRAINERS = ["nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Efficiency"]
PLANS = {"dataset_name": DATASET, "plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {
    "data_identifier": "nnUNetPlans_3d_fullres", "patch_size": [32, 32, 32], "batch_size": 2,
    "architecture": {"arch_kwargs": {"n_stages": 5, "features_per_stage": [32, 64, 128, 256, 320],
                                     "n_conv_per_stage": [2] * 5, "n_conv_per_stage_decoder": [2] * 4,
                                     "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4}}}}}  # PGPS: 3 stages
DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
                "numTraining": 1, "file_ending": ".nii.gz"}


@pytest.fixture
def workspace(tmp_path):
    """An nnU-Net root with a 'preprocessed' dataset (plans + one data file), so nothing is planned."""
    data = tmp_path / "nnunet" / "nnUNet_preprocessed" / DATASET / "nnUNetPlans_3d_fullres"
    data.mkdir(parents=True)
    (data / "case_000.b2nd").write_text("x")
    (data.parent / "nnUNetPlans.json").write_text(json.dumps(PLANS))
    (data.parent / "dataset.json").write_text(json.dumps(DATASET_JSON))
    return tmp_path


def write_spec(root: Path, **changes) -> Path:
    spec = {"results_dir": "results", "nnunet_root": "nnunet", "executor": {"type": "local", "device": "cpu"},
            "datasets": [{"id": 777, "configurations": ["3d_fullres"]}], "trainers": TRAINERS, "folds": [0, 1],
            "knobs": {"NNPROG_EPOCHS": 3}, **changes}
    path = root / "spec.json"
    path.write_text(json.dumps(spec))
    return path


class FakeTrain:
    """Stands in for runner.train: records the call and leaves a finished fold folder behind."""

    def __init__(self, fail=(), sleep=0.0):
        self.calls, self.fail, self.sleep = [], set(fail), sleep

    def __call__(self, run, folders, log_file, extra=(), stop_when=None, timeout=3600):
        start = time.perf_counter()
        time.sleep(self.sleep)
        self.calls.append({"trainer": run.trainer, "fold": run.fold, "extra": list(extra), "knobs": dict(run.knobs),
                           "results": folders.results, "plans": run.plans, "start": start, "end": time.perf_counter()})
        if (run.trainer, run.fold) in self.fail:
            raise NnunetCommandError("nnUNetv2_train failed (exit 1):\nboom")
        device = "cuda:0" if run.device == "cuda" else "cpu"
        finish_fold(run.output_folder(folders, DATASET), run.trainer, device=device)
        return 0.01


def finish_fold(folder: Path, trainer: str, dice: float = 0.75, device: str = "cpu") -> None:
    (folder / "validation").mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint_final.pth").write_bytes(b"")
    (folder / "validation" / "summary.json").write_text(json.dumps(
        {"foreground_mean": {"Dice": dice}, "mean": {"1": {"Dice": dice + 0.1}, "2": {"Dice": dice - 0.1}}}))
    write_record(folder / RUN_SUMMARY_JSON, RunSummary(
        trainer=trainer, package_version="0.1.0", nnunetv2_version="2.8.1", torch_version="2.13", device=device,
        gpu_name=None, epochs_done=3, num_epochs=3, num_iterations_per_epoch=2, train_wall_seconds=7200.0,
        peak_gpu_memory_bytes=None, settings={}))


@pytest.fixture
def fake_train(monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr(bench_execution, "train", fake)
    return fake


def fold_folder(root: Path, spec, trainer: str, fold: int, seed: int = 0, plans: str = "nnUNetPlans") -> Path:
    """Where a run trains: its own results folder per settings (the spec's knobs) and repeat."""
    (settings,) = {v.settings_id for v in spec.variants() if v.trainer == trainer}
    return root / "nnunet" / "nnUNet_results" / f"settings-{settings}" / f"seed_{seed}" / DATASET / \
        f"{trainer}__{plans}__3d_fullres" / f"fold_{fold}"


def test_run_status_from_fold_folder(tmp_path):
    folder = tmp_path / "fold_0"
    assert bench_run.run_status(folder) == "new"
    folder.mkdir()
    (folder / "checkpoint_latest.pth").write_bytes(b"")
    assert bench_run.run_status(folder) == "interrupted"
    (folder / "checkpoint_final.pth").write_bytes(b"")
    assert bench_run.run_status(folder) == "trained"
    (folder / "validation").mkdir()
    assert bench_run.run_status(folder, validates=False) == "done", "final validation off: done when trained"
    (folder / "validation" / "summary.json").write_text("{}")
    assert bench_run.run_status(folder) == "done"


def test_second_run_skips_done_runs(workspace, fake_train):
    spec = load_spec(write_spec(workspace))
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(fake_train.calls) == 4 and outcome.failed == []
    assert all(c["extra"] == [] for c in fake_train.calls)
    settings = spec.variants()[0].settings_id
    assert all(c["results"] == workspace / "nnunet" / "nnUNet_results" / f"settings-{settings}" / "seed_0"
               for c in fake_train.calls)
    records = load_records(spec.results_dir)
    assert len(records) == 4 and {r.status for r in records} == {"done"}
    record = read_record(spec.results_dir, outcome.runs[0].run_id)
    assert record.result.dice_mean == 0.75 and record.result.dice_per_class == {"1": 0.85, "2": 0.65}
    assert record.result.train_wall_seconds == 7200.0 and record.result.train_wall_source == "run_summary"
    assert record.runner_wall_seconds > 0 and record.gpus_used == 0 and record.gpu_hours is None
    assert record.knobs == {"NNPROG_EPOCHS": "3"} and record.attempts[0].mode == "new"
    assert record.settings_id == settings and record.settings == {"knobs": {"NNPROG_EPOCHS": 3}, "small_network": None}
    assert json.loads((spec.results_dir / "spec.json").read_text())["trainers"][0]["name"] == TRAINERS[0]

    bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(fake_train.calls) == 4  # nothing trained again
    assert read_record(spec.results_dir, outcome.runs[0].run_id).attempts == record.attempts


def test_interrupted_runs_resume_with_c_and_trained_runs_validate(workspace, fake_train):
    spec = load_spec(write_spec(workspace))
    interrupted = fold_folder(workspace, spec, TRAINERS[0], 0)
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint_latest.pth").write_bytes(b"")
    trained = fold_folder(workspace, spec, TRAINERS[1], 0)
    trained.mkdir(parents=True)
    (trained / "checkpoint_final.pth").write_bytes(b"")
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    extras = {(c["trainer"], c["fold"]): c["extra"] for c in fake_train.calls}
    assert extras == {(TRAINERS[0], 0): ["--c"], (TRAINERS[1], 0): ["--val"], (TRAINERS[0], 1): [],
                      (TRAINERS[1], 1): []}
    assert outcome.statuses[outcome.runs[0].run_id] == "interrupted"
    assert read_record(spec.results_dir, outcome.runs[0].run_id).attempts[0].mode == "continue"


def test_failed_run_is_recorded_then_retried_with_wall_time_summed(workspace, monkeypatch, capsys):
    fake = FakeTrain(fail={(TRAINERS[1], 1)})
    monkeypatch.setattr(bench_execution, "train", fake)
    spec_file = write_spec(workspace)
    assert main(["benchmark", "run", str(spec_file), "--no-progress"]) == 1
    assert "not done: " in capsys.readouterr().out
    spec = load_spec(spec_file)
    failed_id = [r for r in load_records(spec.results_dir) if r.status == "failed"]
    assert len(failed_id) == 1 and "boom" in failed_id[0].error

    retry = FakeTrain()
    monkeypatch.setattr(bench_execution, "train", retry)
    assert main(["benchmark", "run", str(spec_file), "--no-progress"]) == 0
    assert [(c["trainer"], c["fold"]) for c in retry.calls] == [(TRAINERS[1], 1)]
    record = read_record(spec.results_dir, failed_id[0].run_id)
    assert record.status == "done" and [a.outcome for a in record.attempts] == ["failed", "ok"]
    assert record.runner_wall_seconds == pytest.approx(sum(a.wall_seconds for a in record.attempts))


def test_local_multi_gpu_runs_one_run_per_gpu(workspace, monkeypatch):
    fake = FakeTrain(sleep=0.3)
    monkeypatch.setattr(bench_execution, "train", fake)
    monkeypatch.setattr(bench_execution, "_gpu_name", lambda gpu: f"GPU{gpu}")
    spec = load_spec(write_spec(workspace, executor={"type": "local", "device": "cuda", "gpus": [0, 1]},
                                folds=[0, 1, 2]))
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(fake.calls) == 6 and [r.run_id for r in outcome.records] == [r.run_id for r in outcome.runs]
    gpus = [c["knobs"]["CUDA_VISIBLE_DEVICES"] for c in fake.calls]
    assert set(gpus) == {"0", "1"}
    for gpu in ("0", "1"):  # never two runs on one GPU at the same time
        spans = sorted((c["start"], c["end"]) for c in fake.calls if c["knobs"]["CUDA_VISIBLE_DEVICES"] == gpu)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    overlapping = any(a["start"] < b["end"] and b["start"] < a["end"] for a in fake.calls for b in fake.calls
                      if a is not b)
    assert overlapping, "the two GPUs should train at the same time"
    record = outcome.records[0]
    assert record.gpus_used == 1 and record.gpu_hours == pytest.approx(2.0)  # 7200 s x 1 GPU
    assert record.environment["gpu_name"] == f"GPU{record.attempts[0].gpu}"


def test_stop_event_interrupts_and_records(workspace, monkeypatch):
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(bench_execution, "train", lambda *a, **k: 0.0)  # as runner.train returns after stop_when kills
    spec = load_spec(write_spec(workspace))
    context = bench_run.context_for(spec)
    run = bench_run.expand_runs(spec, [DATASET])[0]
    record = bench_run.execute_run(run, context, stop=stop)
    assert record.status == "interrupted" and record.attempts[0].outcome == "interrupted"


def test_submitit_debug_executor_runs_the_array_and_resumes_with_c(workspace, fake_train):
    submitit = pytest.importorskip("submitit")
    spec = load_spec(write_spec(workspace, executor={
        "type": "slurm", "device": "cpu",
        "slurm": {"cluster": "debug", "partition": "gpu", "array_parallelism": 2, "extra": {"account": "lab"}}}))
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(outcome.jobs) == 4 and len(fake_train.calls) == 4
    assert {r.status for r in outcome.records} == {"done"}
    jobs = json.loads((spec.results_dir / "slurm" / "jobs.json").read_text())
    assert set(jobs) == {r.run_id for r in outcome.runs}
    # a second submission has nothing left to do
    assert bench_run.run_benchmark(spec, progress=False, log=lambda _: None).jobs == []

    # preemption: checkpoint() hands submitit a resubmission that continues with --c
    job = bench_run.SlurmRunJob()
    assert isinstance(job, submitit.helpers.Checkpointable)
    assert type(pickle.loads(pickle.dumps(job))) is bench_run.SlurmRunJob
    context = bench_run.context_for(spec)
    run = bench_run.expand_runs(spec, [DATASET])[0]
    delayed = job.checkpoint(run, context)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission) and delayed.function.resume
    fold = context.fold_folder(run)
    for name in ("checkpoint_final.pth", "validation/summary.json"):
        (fold / name).unlink()
    (fold / "nnprog_run.json").write_text("{}")  # the preempted run had started (a real training writes it first)
    record = delayed.function(*delayed.args, **delayed.kwargs)
    assert fake_train.calls[-1]["extra"] == ["--c"] and record.status == "done"


def test_small_network_plans_and_seed_folders(workspace, fake_train):
    features = [4, 8, 16, 16, 16]
    spec = load_spec(write_spec(workspace, small_network={"features_per_stage": features}, seeds=[0, 1], folds=[0]))
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    small = json.loads((workspace / "nnunet" / "nnUNet_preprocessed" / DATASET / "nnUNetPlans_small.json").read_text())
    assert small["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["features_per_stage"] == features
    assert {c["plans"] for c in fake_train.calls} == {"nnUNetPlans_small"}
    assert {c["results"].name for c in fake_train.calls} == {"seed_0", "seed_1"}
    assert fold_folder(workspace, spec, TRAINERS[0], 0, seed=1, plans="nnUNetPlans_small").is_dir()


def test_preparation_errors_and_missing_preprocessing(workspace, monkeypatch, fake_train):
    spec = load_spec(write_spec(workspace, datasets=[{"id": 778, "configurations": ["3d_fullres"]}]))
    with pytest.raises(ProgressiveConfigError, match="synthetic_preset"):
        bench_run.run_benchmark(spec, progress=False)
    spec = load_spec(write_spec(workspace, datasets=[{"id": 777, "configurations": ["2d"]}]))
    with pytest.raises(ProgressiveConfigError, match=r"configurations \['2d'\] are not in"):
        bench_run.run_benchmark(spec, progress=False)
    commands = []
    monkeypatch.setattr(bench_run, "run_logged", lambda command, env, log: commands.append(command))
    data = workspace / "nnunet" / "nnUNet_preprocessed" / DATASET / "nnUNetPlans_3d_fullres"
    (data / "case_000.b2nd").unlink()
    spec = load_spec(write_spec(workspace))
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None, prepare_only=True)
    assert commands == [["nnUNetv2_preprocess", "-d", "777", "-plans_name", "nnUNetPlans", "-c", "3d_fullres",
                         "-np", "2"]]


def test_plain_nnunet_trainer_times_come_from_the_checkpoint_log(tmp_path):
    import torch

    folder = tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"
    (folder / "validation").mkdir(parents=True)
    torch.save({"logging": {"epoch_start_timestamps": [100.0, 110.0, 125.0],
                            "epoch_end_timestamps": [108.0, 121.0, 130.0]}}, folder / "checkpoint_final.pth")
    debug = {"num_epochs": "3", "num_iterations_per_epoch": "250", "device": "cuda:0", "gpu_name": "NVIDIA H100",
             "torch_version": "2"}
    (folder / "debug.json").write_text(json.dumps(debug))
    (folder / "validation" / "summary.json").write_text(json.dumps({"foreground_mean": {"Dice": 0.5}, "mean": {}}))
    (folder.parent / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1}}))
    result = collect_run(folder)
    assert result.train_wall_seconds == pytest.approx(24.0) and result.train_wall_source == "checkpoint_logging"
    assert (result.epochs_done, result.num_epochs, result.num_iterations_per_epoch) == (3, 3, 250)
    assert result.environment["gpu_name"] == "NVIDIA H100" and result.class_names == {"1": "liver"}
    assert result.curriculum is None and result.time_to_dice is None


def test_cli_dry_run_and_bad_spec(workspace, fake_train, capsys):
    spec_file = write_spec(workspace)
    assert main(["benchmark", "run", str(spec_file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("| new | new |") == 4 and fake_train.calls == []
    assert main(["benchmark", "run", str(spec_file), "--dry-run", "--seeds", "0,3"]) == 0
    out = capsys.readouterr().out
    assert out.count("| new | new |") == 8 and out.count("__seed3 |") == 4
    assert main(["benchmark", "run", str(spec_file), "--dry-run", "--seeds", "0,-1"]) == 2
    assert "--seeds: expected comma-separated integers >= 0" in capsys.readouterr().err
    bad = write_spec(workspace, executor={"type": "cloud"})
    assert main(["benchmark", "run", str(bad)]) == 2
    assert "executor.type: expected one of ('local', 'slurm'), got 'cloud'" in capsys.readouterr().err


def test_runs_that_would_stop_at_start_are_reported_before_anything_trains(workspace, fake_train, capsys):
    # 2 epochs cannot cover the 3 patch stages of the plan: the PGPS runs would stop after the constant ones trained
    spec_file = write_spec(workspace, knobs={"NNPROG_EPOCHS": 2})
    with pytest.raises(ProgressiveConfigError) as raised:
        bench_run.run_benchmark(load_spec(spec_file), progress=False, log=lambda _: None)
    message = str(raised.value)
    assert f"nnUNetTrainer_PGPS_Efficiency on {DATASET} 3d_fullres: 2 epochs cannot cover 3 patch-size" in message
    assert message.count(DATASET) == 1, "one line per trainer entry and dataset, not per fold"
    assert "ConstantPatch" not in message and fake_train.calls == []
    assert main(["benchmark", "run", str(spec_file), "--dry-run"]) == 2  # the dry run says it too, once planned
    assert "2 epochs cannot cover 3 patch-size stages" in capsys.readouterr().err
    # the fix the message names: the PGPS entry's own epochs
    fixed = write_spec(workspace, knobs={"NNPROG_EPOCHS": 2},
                       trainers=[TRAINERS[0], {"name": TRAINERS[1], "knobs": {"NNPROG_EPOCHS": 3}}])
    assert bench_run.run_benchmark(load_spec(fixed), progress=False, log=lambda _: None).failed == []
    assert len(fake_train.calls) == 4


def test_changed_knobs_are_new_runs_and_knob_sets_of_one_trainer_run_side_by_side(workspace, fake_train, capsys):
    spec = load_spec(write_spec(workspace))
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(fake_train.calls) == 4
    # the spec's knobs change: every run is new (its own folder), nothing of the old runs is reused
    changed = load_spec(write_spec(workspace, knobs={"NNPROG_EPOCHS": 4}))
    outcome = bench_run.run_benchmark(changed, progress=False, log=lambda _: None)
    assert len(fake_train.calls) == 8 and set(outcome.statuses.values()) == {"new"}
    assert {c["knobs"]["NNPROG_EPOCHS"] for c in fake_train.calls[4:]} == {"4"}
    assert len({c["results"] for c in fake_train.calls}) == 2  # one results folder per settings
    assert len(outcome.stale_records) == 4 and len(load_records(changed.results_dir)) == 8
    assert main(["benchmark", "run", str(workspace / "spec.json"), "--dry-run"]) == 0
    assert "4 record(s) in" in capsys.readouterr().out
    # one trainer with two knob sets, each with its label; the other trainer's runs are the ones done above
    variants = write_spec(workspace, knobs={"NNPROG_EPOCHS": 4}, trainers=[
        TRAINERS[0], {"name": TRAINERS[1], "label": "PGPS_share0.5", "knobs": {"NNPROG_GROWTH_SHARE": 0.5}},
        {"name": TRAINERS[1], "label": "PGPS_share0.75", "knobs": {"NNPROG_GROWTH_SHARE": 0.75}}])
    outcome = bench_run.run_benchmark(load_spec(variants), progress=False, log=lambda _: None)
    new_calls = fake_train.calls[8:]
    assert sorted((c["knobs"].get("NNPROG_GROWTH_SHARE"), c["fold"]) for c in new_calls) == \
        [("0.5", 0), ("0.5", 1), ("0.75", 0), ("0.75", 1)]
    assert outcome.statuses[outcome.runs[0].run_id] == "done"
    assert [r.label for r in outcome.records[:3]] == [TRAINERS[0], "PGPS_share0.5", "PGPS_share0.75"]
    assert main(["benchmark", "report", str(workspace / "results")]) == 0
    report = (workspace / "results" / "report" / "report.md").read_text()
    assert "| PGPS_share0.5 | 2 |" in report and "| PGPS_share0.75 | 2 |" in report
    assert "## Records left out" in report and report.count("settings-") >= 6
    assert f"| {TRAINERS[1]} | 2 |" not in report  # the runs of the first spec are left out


def test_misspelt_trainer_is_refused_before_anything_runs(workspace, fake_train, capsys):
    spec_file = write_spec(workspace, trainers=[TRAINERS[0], "nnUNetTrainer_PGPS_Eficiency"])
    for extra in (["--dry-run"], []):
        assert main(["benchmark", "run", str(spec_file), "--no-progress", *extra]) == 2
        err = capsys.readouterr().err
        assert "trainers[1]: no trainer named 'nnUNetTrainer_PGPS_Eficiency'" in err
    assert fake_train.calls == [] and not (workspace / "results").exists()


def test_knobs_a_trainer_does_not_read_are_refused_before_anything_runs(workspace, fake_train, monkeypatch):
    import nnunet_progressive.nnunet.orchestration.discovery as discovery
    from nnunet_progressive.core.knobs import PATCH_CURRICULUM, RUN_LENGTH

    def reads(features):  # a trainer class that reads these knobs (and keeps the planned patch)
        return type("Reads", (), {"knob_features": classmethod(lambda cls: features)})

    classes = {TRAINERS[0]: reads({RUN_LENGTH}), TRAINERS[1]: reads({RUN_LENGTH, PATCH_CURRICULUM})}
    monkeypatch.setattr(discovery, "find_trainer_class", lambda name: classes[name])
    spec = load_spec(write_spec(workspace, knobs={"NNPROG_EPOCHS": 3, "NNPROG_GROWTH_SHARE": 0.5}))
    with pytest.raises(ProgressiveConfigError, match=r"trainers\[0\].*NNPROG_GROWTH_SHARE.*move it into"):
        bench_run.run_benchmark(spec, progress=False, dry_run=True)
    spec = load_spec(write_spec(workspace, trainers=[TRAINERS[0], {"name": TRAINERS[1],
                                                                   "knobs": {"NNPROG_GROWTH_SHARE": 0.5}}]))
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(fake_train.calls) == 4


def test_damaged_run_records_name_their_file(workspace, fake_train, capsys):
    spec = load_spec(write_spec(workspace))
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    path = record_path(spec.results_dir, outcome.runs[1].run_id)
    path.write_text('{"run_id": "x", "status": "don')
    assert main(["benchmark", "report", str(spec.results_dir)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not valid JSON" in err and len(err.strip().splitlines()) == 1
    path.write_text(json.dumps({**json.loads(record_path(spec.results_dir, outcome.runs[0].run_id).read_text()),
                                "status": "finished"}))
    assert main(["benchmark", "report", str(spec.results_dir)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "status: expected one of" in err and "delete the file" in err
    path.unlink()  # the fix the message gives: the record is written again from the fold folder
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert len(fake_train.calls) == 4 and read_record(spec.results_dir, outcome.runs[1].run_id).status == "done"


def test_prepare_ranks_the_cases_once_for_pdl(workspace, fake_train, monkeypatch):
    from nnunet_progressive.nnunet.offline import pdl_ranking

    commands = []

    def fake_rank(dataset, configuration, plans, *, folds, preprocessed):  # `nnprog rank`'s library function
        print("ranking ...")  # its output goes to the preparation log
        commands.append(["rank", "-d", str(dataset), "-c", configuration, "-p", plans, "--fold",
                         *(str(f) for f in folds)])
        assert preprocessed == spec.folders().preprocessed  # the spec's folders, passed, not read from os.environ
        written = [Path(preprocessed) / DATASET / f"similarity_ranking_nnUNetPlans_3d_fullres_fold{fold}.json"
                   for fold in folds]
        for path in written:
            path.write_text("{}")
        return written

    monkeypatch.setattr(pdl_ranking, "rank_dataset", fake_rank)
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    spec = load_spec(write_spec(workspace, datasets=[{"id": 777, "configurations": ["3d_fullres"],
                                                      "prepare": {"rank": True}}], small_network=True))
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None, prepare_only=True)
    assert len(commands) == 1
    assert commands[0][-10:] == ["rank", "-d", "777", "-c", "3d_fullres", "-p", "nnUNetPlans_small", "--fold", "0",
                                 "1"]  # the spec's folds
    log = (spec.results_dir / "logs" / f"prepare_{DATASET}.log").read_text()
    assert "$ nnprog rank -d 777 -c 3d_fullres -p nnUNetPlans_small --fold 0 1" in log and "ranking ..." in log
    prepared = json.loads((spec.results_dir / "prepared" / f"{DATASET}.json").read_text())
    assert prepared["rank_seconds"] >= 0
    assert [Path(f).name for f in prepared["ranking_files"]] == [
        f"similarity_ranking_nnUNetPlans_3d_fullres_fold{fold}.json" for fold in (0, 1)]
    bench_run.run_benchmark(spec, progress=False, log=lambda _: None, prepare_only=True)
    assert len(commands) == 1  # the ranking exists: not computed again


class FakeEnergyCounter:
    """Stands in for NVML: each read of a device's counter is 5000 mJ higher than the last."""

    def __init__(self):
        self.reads: list[list[str]] = []
        self.millijoules = 0

    def __call__(self, devices):
        self.reads.append(list(devices))
        if not devices:
            return None
        self.millijoules += 5000
        return {d: self.millijoules for d in devices}


def test_seeded_repeats_train_with_their_seed_and_record_gpu_energy(workspace, fake_train, monkeypatch):
    """The protocol's repeats: `seed_training` gives repeat s NNPROG_SEED=s; each attempt's GPU energy (NVML's
    counter at start and end) is recorded, and a CPU run's is not reported."""
    counter = FakeEnergyCounter()
    monkeypatch.setattr(bench_execution, "read_nvml_energy", counter)
    monkeypatch.setattr(bench_execution, "_gpu_name", lambda gpu: "H100")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = load_spec(write_spec(workspace, executor={"type": "local", "device": "cuda"}, folds=[0], seeds=[0, 1],
                                seed_training=True))
    outcome = bench_run.run_benchmark(spec, progress=False, log=lambda _: None)
    assert sorted((c["trainer"], c["results"].name, c["knobs"]["NNPROG_SEED"]) for c in fake_train.calls) == sorted(
        (t, f"seed_{s}", str(s)) for t in TRAINERS for s in (0, 1))
    assert {r.status for r in outcome.records} == {"done"}
    assert all(r.energy_joules == pytest.approx(5.0) and r.attempts[0].energy_joules == pytest.approx(5.0)
               for r in outcome.records)
    assert counter.reads and all(devices == ["0"] for devices in counter.reads)

    cpu_spec = load_spec(write_spec(workspace, results_dir="results_cpu", folds=[0]))
    cpu = bench_run.run_benchmark(cpu_spec, progress=False, log=lambda _: None)
    assert {r.energy_joules for r in cpu.records} == {None}


def test_seed_training_refuses_trainers_that_cannot_read_the_seed(workspace, fake_train):
    spec = load_spec(write_spec(workspace, trainers=["nnUNetTrainer", TRAINERS[0]], seed_training=True, knobs={}))
    with pytest.raises(ProgressiveConfigError, match=r"trainers\[0\].*cannot read NNPROG_SEED"):
        bench_run.check_trainers(spec)


def test_a_requeued_job_continues_only_a_run_that_had_started(workspace, fake_train):
    """A requeued SLURM job (force_continue): --c where the run's identity file is there (its recorded settings and
    weights), a new start where the first attempt died before it (--c would start nnU-Net afresh without the
    pre-trained weights)."""
    spec = load_spec(write_spec(workspace))
    context = bench_execution.RunContext(NnunetFolders.under(workspace / "nnunet"), spec.results_dir)
    started, never = spec_runs = bench_run.expand_runs(spec, [DATASET])[:2]
    for run in spec_runs:
        context.fold_folder(run).mkdir(parents=True)
    (context.fold_folder(started) / "nnprog_run.json").write_text("{}")
    modes = {run.trainer: bench_execution.execute_run(run, context, force_continue=True).attempts[-1].mode
             for run in (started, never)}
    assert modes == {started.trainer: "continue", never.trainer: "new"}
    assert [c["extra"] for c in fake_train.calls] == [["--c"], []]
