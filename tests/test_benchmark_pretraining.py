"""The `pretraining:` step of benchmark specs: parsing, run identity, and a tiny end-to-end smoke run."""
from __future__ import annotations

import pytest

from nnunet_progressive.benchmark.execution import RunContext, pretrained_weights_path
from nnunet_progressive.benchmark.report import write_report
from nnunet_progressive.benchmark.run import run_benchmark
from nnunet_progressive.benchmark.spec import expand_runs, parse_spec
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import TransferRecord, read_record
from nnunet_progressive.datasets.synthetic import SyntheticDatasetSpec, write_dataset
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders


def _spec(tmp_path, **changes) -> dict:
    data = {
        "results_dir": str(tmp_path / "results"), "nnunet_root": str(tmp_path / "nnunet"),
        "executor": {"type": "local", "device": "cpu"},
        "datasets": [{"id": 651, "configurations": ["3d_fullres"]}],
        "pretraining": [{"label": "similar", "source": {"id": 652}, "knobs": {"NNPROG_EPOCHS": 1}}],
        "trainers": ["nnUNetTrainer_ConstantPatch",
                     {"name": "nnUNetTrainer_Finetune", "pretrained": "similar", "knobs": {"NNPROG_WARMUP_EPOCHS": 1}}],
        "knobs": {"NNPROG_EPOCHS": 2, "NNPROG_ITERATIONS": 2, "NNPROG_VAL_ITERATIONS": 1},
        "small_network": {"features_per_stage": [4, 8, 16, 32, 32, 32]},
    }
    data.update(changes)
    return data


def test_pretrained_runs_have_their_own_identity_and_folder(tmp_path):
    spec = parse_spec(_spec(tmp_path))
    assert spec.labels == ["nnUNetTrainer_ConstantPatch", "nnUNetTrainer_Finetune_from_similar"]
    scratch, finetuned = expand_runs(spec, ["Dataset651_Target"])
    assert finetuned.pretrained == "similar" and scratch.pretrained is None
    assert finetuned.settings["pretrained"] == "similar" and "pretrained" not in scratch.settings
    assert f"__nnUNetTrainer_Finetune__settings-{finetuned.settings_id}__fold0__seed0" in finetuned.run_id
    without = expand_runs(parse_spec(_spec(tmp_path, trainers=[
        {"name": "nnUNetTrainer_Finetune", "knobs": {"NNPROG_WARMUP_EPOCHS": 1}}])), ["Dataset651_Target"])[0]
    assert without.settings_id != finetuned.settings_id, "the source is part of the run's identity"
    context = RunContext(NnunetFolders.under(tmp_path / "nnunet"), spec.results_dir)
    assert f"settings-{finetuned.settings_id}/seed_0/Dataset651_Target" in str(context.fold_folder(finetuned))
    assert parse_spec(spec.to_dict()) == spec


@pytest.mark.parametrize("changes, message", [
    ({"trainers": [{"name": "nnUNetTrainer_Finetune", "pretrained": "other"}]},
     "pretrained: expected one of the pretraining labels \\['similar'\\]"),
    ({"pretraining": [{"label": "a", "source": {"id": 652}}, {"label": "a", "source": {"id": 653}}]}, "listed twice"),
    ({"pretraining": [{"source": {"id": 652}}]}, "missing required key .label."),
    ({"pretraining": [{"label": "a", "source": {"id": 652}, "epochs": 3}]}, "unknown key"),
])
def test_bad_pretraining_entries_are_clear_errors(tmp_path, changes, message):
    with pytest.raises(ProgressiveConfigError, match=message):
        parse_spec(_spec(tmp_path, **changes))


def test_the_same_trainer_from_two_sources_is_two_runs(tmp_path):
    data = _spec(tmp_path, pretraining=[{"label": "a", "source": {"id": 652}}, {"label": "b", "source": {"id": 653}}],
                 trainers=[{"name": "nnUNetTrainer_Finetune", "pretrained": "a"},
                           {"name": "nnUNetTrainer_Finetune", "pretrained": "b"}])
    runs = expand_runs(parse_spec(data), ["Dataset651_Target"])
    assert len({r.run_id for r in runs}) == 2


@pytest.mark.e2e
@pytest.mark.long
def test_tiny_transfer_benchmark_pretrains_then_fine_tunes(tmp_path):
    """Smoke test of benchmarks/transfer_cpu.yaml's mechanics at a tiny size (not a measurement)."""
    folders = NnunetFolders.under(tmp_path / "nnunet")
    write_dataset(SyntheticDatasetSpec(name="Target", num_cases=5, shape=(32, 32, 32), modality="CT", seed=5),
                  folders.raw, 651)
    write_dataset(SyntheticDatasetSpec(name="Source", num_cases=4, shape=(32, 32, 32), num_organs=2, modality="CT",
                                       seed=6), folders.raw, 652)
    spec = parse_spec(_spec(tmp_path))
    outcome = run_benchmark(spec, progress=False, log=lambda _: None)
    assert not outcome.failed, outcome.records
    weights = pretrained_weights_path(spec.results_dir, "similar", "Dataset651_Target", "3d_fullres",
                                      "nnUNetPlans_small")
    record = read_record(str(weights) + ".transfer.json", TransferRecord)
    assert record.mapped_share == 1.0 and record.target_dataset == "Dataset651_Target"
    assert (spec.results_dir / "pretraining" / "runs").is_dir()
    # `nnprog transfer prepare|adapt` called in this process, on the spec's folders, their output in the step's log
    step_log = (spec.results_dir / "logs" / "pretraining_similar_Dataset651_Target.log").read_text()
    assert "$ nnprog transfer prepare --source Dataset652_Source --target Dataset651_Target" in step_log
    assert "$ nnUNetv2_move_plans_between_datasets -s 651 -t 652" in step_log  # nnU-Net's own commands: logged
    assert "$ nnprog transfer adapt " in step_log
    assert "of the target's weights (segmentation heads excluded) come from the source" in step_log
    [pretrained_fold] = folders.results.rglob("fold_all")
    assert not (pretrained_fold / "validation").exists(), "no final validation on the source's training cases"
    log = "\n".join(p.read_text() for p in pretrained_fold.glob("training_log_*.txt"))
    assert "final validation skipped (NNPROG_FINAL_VALIDATION=off)" in log
    finetuned = [r for r in outcome.records if r.label == "nnUNetTrainer_Finetune_from_similar"]
    assert len(finetuned) == 1 and f"-pretrained_weights {weights}" in " ".join(finetuned[0].attempts[0].command)
    # a second run: everything is done, nothing trains again
    again = run_benchmark(spec, progress=False, log=lambda _: None)
    assert all(r.attempts == o.attempts for r, o in zip(again.records, outcome.records))
    report = (spec.results_dir / "report" / "report.md")
    write_report(spec.results_dir)
    assert "nnUNetTrainer_Finetune_from_similar" in report.read_text()
