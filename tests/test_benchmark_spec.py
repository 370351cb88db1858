"""Benchmark spec: parsing (YAML and JSON), validation errors, run expansion."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_progressive.benchmark.spec import (
    BenchmarkRun,
    expand_runs,
    load_spec,
    parse_seeds,
    parse_spec,
    with_seeds,
)
from nnunet_progressive.core.errors import ProgressiveConfigError

YAML_SPEC = """
results_dir: results/run1
nnunet_root: work
executor:
  type: local
  device: cuda
  gpus: [0, 1]
datasets:
  - id: 501
    configurations: [3d_fullres]
    prepare: {synthetic_preset: tiny3d}
  - name: Dataset004_Hippocampus
    configurations: [2d, 3d_fullres]
    plans: nnUNetPlans
trainers:
  - nnUNetTrainer_ConstantPatch
  - name: nnUNetTrainer_PGPS_Performance
    knobs: {NNPROG_MAX_BATCH: 8, NNPROG_EPOCHS: 50}
folds: [0, 1]
seeds: [0, 3]
knobs: {NNPROG_EPOCHS: 100, NNPROG_ITERATIONS: 2}
small_network: true
reference_trainer: nnUNetTrainer_ConstantPatch
"""

MINIMAL = {"results_dir": "out", "datasets": [{"id": 4, "configurations": ["3d_fullres"]}],
           "trainers": ["nnUNetTrainer"]}


def test_yaml_spec_is_parsed_with_paths_relative_to_the_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(YAML_SPEC)
    spec = load_spec(path)
    assert spec.results_dir == (tmp_path / "results" / "run1").resolve()
    assert spec.folders().results == (tmp_path / "work" / "nnUNet_results").resolve()
    assert spec.executor.gpus == (0, 1) and spec.executor.device == "cuda" and spec.executor.gpus_per_run == 1
    assert [d.configurations for d in spec.datasets] == [("3d_fullres",), ("2d", "3d_fullres")]
    assert spec.datasets[0].synthetic_preset == "tiny3d"
    assert spec.trainer_names == ["nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Performance"]
    assert spec.knobs == {"NNPROG_EPOCHS": "100", "NNPROG_ITERATIONS": "2"}
    assert spec.training_plans(spec.datasets[0]) == "nnUNetPlans_small"
    assert spec.folds == (0, 1) and spec.seeds == (0, 3)


def test_json_spec_equals_yaml_spec(tmp_path):
    import yaml

    (tmp_path / "a.yaml").write_text(YAML_SPEC)
    (tmp_path / "b.json").write_text(json.dumps(yaml.safe_load(YAML_SPEC)))
    assert load_spec(tmp_path / "a.yaml") == load_spec(tmp_path / "b.json")


def test_to_dict_round_trips(tmp_path):
    (tmp_path / "a.yaml").write_text(YAML_SPEC)
    spec = load_spec(tmp_path / "a.yaml")
    assert parse_spec(json.loads(json.dumps(spec.to_dict())), tmp_path) == spec


def test_defaults_of_a_minimal_spec(tmp_path):
    spec = parse_spec(MINIMAL, tmp_path)
    assert spec.executor.type == "local" and spec.executor.device == "cuda" and spec.executor.gpus is None
    assert spec.folds == (0,) and spec.seeds == (0,) and spec.small_network is None
    assert spec.datasets[0].plans == "nnUNetPlans" and spec.training_plans(spec.datasets[0]) == "nnUNetPlans"


def test_expand_runs_merges_knobs_and_orders_trainers_innermost(tmp_path):
    (tmp_path / "a.yaml").write_text(YAML_SPEC)
    spec = load_spec(tmp_path / "a.yaml")
    runs = expand_runs(spec, ["Dataset501_NNProgTiny3D", "Dataset004_Hippocampus"])
    # (1 + 2 configurations) x 2 folds x 2 seeds x 2 trainers
    assert len(runs) == 24 and len({r.run_id for r in runs}) == 24
    assert [r.trainer for r in runs[:2]] == spec.trainer_names
    performance = runs[1]
    assert performance.knobs == {"NNPROG_EPOCHS": "50", "NNPROG_ITERATIONS": "2", "NNPROG_MAX_BATCH": "8"}
    assert runs[0].knobs == {"NNPROG_EPOCHS": "100", "NNPROG_ITERATIONS": "2"}
    assert runs[0].run_id == "Dataset501_NNProgTiny3D__3d_fullres__nnUNetPlans_small__nnUNetTrainer_ConstantPatch" \
                             f"__settings-{runs[0].settings_id}__fold0__seed0"
    assert runs[0].dataset_id == 501
    assert BenchmarkRun.from_dict(performance.to_dict()) == performance


def test_folders_from_environment(tmp_path, monkeypatch):
    spec = parse_spec(MINIMAL, tmp_path)
    env = {"nnUNet_raw": str(tmp_path / "r"), "nnUNet_preprocessed": str(tmp_path / "p"),
           "nnUNet_results": str(tmp_path / "s")}
    assert spec.folders(env).preprocessed == (tmp_path / "p").resolve()
    with pytest.raises(ProgressiveConfigError, match="nnUNet_results is not set.*nnunet_root"):
        spec.folders({k: v for k, v in env.items() if k != "nnUNet_results"})


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, r"unknown key\(s\) \['colour'\].*valid keys"),
    ({"trainers": None}, "missing required key 'trainers'"),
    ({"trainers": []}, "missing required key 'trainers'"),
    ({"executor": {"type": "kubernetes"}}, r"executor.type: expected one of \('local', 'slurm'\), got 'kubernetes'"),
    ({"executor": {"type": "local", "gpu": [0]}}, r"executor: unknown key\(s\) \['gpu'\]"),
    ({"executor": {"type": "slurm", "gpus": [0, 1]}}, "gpus_per_node"),
    ({"executor": {"device": "cpu", "gpus": [0]}}, "set device: cuda"),
    ({"executor": {"gpus": [0, 0]}}, "distinct GPU indices"),
    ({"executor": {"type": "slurm", "slurm": {"partitions": "gpu"}}}, r"executor.slurm: unknown key\(s\)"),
    ({"executor": {"slurm": {"cluster": "pbs"}}}, "executor.slurm.cluster"),
    ({"datasets": [{"configurations": ["2d"]}]}, "needs `id: 4` or `name"),
    ({"datasets": [{"id": 4}]}, r"datasets\[0\].configurations: expected a non-empty list"),
    ({"datasets": [{"id": 4, "name": "Dataset005_X", "configurations": ["2d"]}]}, "id and name to agree"),
    ({"datasets": [{"id": 4, "configurations": ["2d"], "prepare": {"synthetic_preset": "huge"}}]}, "one of"),
    ({"datasets": [{"name": "Hippocampus", "configurations": ["2d"]}]}, "Dataset004_Hippocampus"),
    ({"trainers": ["A", "A"]}, "listed twice"),
    ({"trainers": [{"knobs": {}}]}, "needs `name"),
    ({"reference_trainer": "B"}, "reference_trainer: expected one of the trainers"),
    ({"knobs": {"NNPROG EPOCHS": 3}}, "environment variable names"),
    ({"knobs": {"NNPROG_EPOCHS": [3]}}, "a string or number"),
    ({"folds": [-1]}, r"folds\[0\]: expected an integer >= 0"),
    ({"small_network": {"features": [4]}}, r"small_network: unknown key"),
])
def test_invalid_specs_say_what_is_wrong(tmp_path, change, message):
    with pytest.raises(ProgressiveConfigError, match=message):
        parse_spec({**MINIMAL, **change}, tmp_path)


def test_load_spec_errors_name_the_file(tmp_path):
    with pytest.raises(ProgressiveConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "spec.toml"
    bad.write_text("x = 1")
    with pytest.raises(ProgressiveConfigError, match=r"expected a .yaml, .yml or .json file"):
        load_spec(bad)
    broken = tmp_path / "spec.json"
    broken.write_text("{")
    with pytest.raises(ProgressiveConfigError, match="not valid JSON"):
        load_spec(broken)
    unknown = tmp_path / "u.json"
    unknown.write_text(json.dumps({**MINIMAL, "foldz": [0]}))
    with pytest.raises(ProgressiveConfigError, match=str(Path(unknown).resolve())):
        load_spec(unknown)


def test_slurm_section_and_all_folds(tmp_path):
    spec = parse_spec({**MINIMAL, "folds": "all", "executor": {
        "type": "slurm", "slurm": {"partition": "gpu", "time_min": 600, "gpus_per_node": 1, "mem_gb": 32,
                                   "array_parallelism": 4, "max_num_resubmits": 5, "setup": ["module load cuda"],
                                   "extra": {"account": "lab"}}}}, tmp_path)
    slurm = spec.executor.slurm
    assert spec.folds == ("all",)
    assert (slurm.partition, slurm.time_min, slurm.array_parallelism, slurm.max_num_resubmits) == ("gpu", 600, 4, 5)
    assert slurm.setup == ("module load cuda",) and slurm.extra == {"account": "lab"}


def test_yaml_without_pyyaml_says_how_to_fix(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml -> ImportError
    path = tmp_path / "spec.yaml"
    path.write_text(YAML_SPEC)
    with pytest.raises(ProgressiveConfigError, match="pip install pyyaml"):
        load_spec(path)
    (tmp_path / "spec.json").write_text(json.dumps(MINIMAL))
    assert load_spec(tmp_path / "spec.json").trainer_names == ["nnUNetTrainer"]


def test_seeds_from_the_command_line(tmp_path):
    assert parse_seeds("0, 1,1,4") == (0, 1, 4)
    for bad in ("", "a", "0,,1", "-1", "1.5"):
        with pytest.raises(ProgressiveConfigError, match="--seeds"):
            parse_seeds(bad)
    spec = with_seeds(parse_spec({"results_dir": "r", "datasets": [{"id": 1, "configurations": ["3d_fullres"]}],
                                   "trainers": ["A"]}, tmp_path), [2, 0])
    assert spec.seeds == (2, 0) and [r.seed for r in expand_runs(spec, ["Dataset001_X"])] == [2, 0]


def _variant_ids(spec_data, tmp_path):
    return {v.label: v.settings_id for v in parse_spec(spec_data, tmp_path).variants()}


def test_settings_are_part_of_the_run_identity(tmp_path):
    base = {**MINIMAL, "trainers": ["nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Efficiency"],
            "knobs": {"NNPROG_EPOCHS": 20, "NNPROG_GROWTH_SHARE": 0.5}}
    ids = _variant_ids(base, tmp_path)
    assert ids["nnUNetTrainer_ConstantPatch"] == ids["nnUNetTrainer_PGPS_Efficiency"]  # same effective knobs
    # the same values written differently are the same settings
    assert _variant_ids({**base, "knobs": {"NNPROG_EPOCHS": "20", "NNPROG_GROWTH_SHARE": "0.50"}}, tmp_path) == ids
    # a changed knob, a new knob or another small network is another run
    changed = _variant_ids({**base, "knobs": {"NNPROG_EPOCHS": 21, "NNPROG_GROWTH_SHARE": 0.5}}, tmp_path)
    added = _variant_ids({**base, "knobs": {**base["knobs"], "nnUNet_compile": "false"}}, tmp_path)
    small = _variant_ids({**base, "small_network": True}, tmp_path)
    assert len({ids["nnUNetTrainer_ConstantPatch"], changed["nnUNetTrainer_ConstantPatch"],
                added["nnUNetTrainer_ConstantPatch"], small["nnUNetTrainer_ConstantPatch"]}) == 4
    # a per-trainer knob changes only that trainer's runs
    own = _variant_ids({**base, "trainers": ["nnUNetTrainer_ConstantPatch", {
        "name": "nnUNetTrainer_PGPS_Efficiency", "knobs": {"NNPROG_GROWTH_SHARE": 0.3}}]}, tmp_path)
    assert own["nnUNetTrainer_ConstantPatch"] == ids["nnUNetTrainer_ConstantPatch"]
    assert own["nnUNetTrainer_PGPS_Efficiency"] != ids["nnUNetTrainer_PGPS_Efficiency"]
    spec = parse_spec(base, tmp_path)
    runs = expand_runs(spec, ["Dataset004_Hippocampus"])
    assert all(r.settings_id in r.run_id and r.settings_folder == f"settings-{r.settings_id}" for r in runs)
    assert runs[0].settings == {"knobs": {"NNPROG_EPOCHS": 20, "NNPROG_GROWTH_SHARE": 0.5}, "small_network": None}


def test_one_trainer_with_several_knob_sets_needs_labels(tmp_path):
    entries = [{"name": "nnUNetTrainer_PGPS_Efficiency", "knobs": {"NNPROG_GROWTH_SHARE": 0.3}},
               {"name": "nnUNetTrainer_PGPS_Efficiency", "knobs": {"NNPROG_GROWTH_SHARE": 0.6}}]
    with pytest.raises(ProgressiveConfigError, match="listed twice.*label"):
        parse_spec({**MINIMAL, "trainers": entries}, tmp_path)
    labelled = [{**entries[0], "label": "share0.3"}, {**entries[1], "label": "share0.6"}]
    spec = parse_spec({**MINIMAL, "trainers": labelled, "reference_trainer": "share0.6"}, tmp_path)
    assert spec.labels == ["share0.3", "share0.6"] and spec.trainer_names == [entries[0]["name"]] * 2
    runs = expand_runs(spec, ["Dataset004_Hippocampus"])
    assert [r.label for r in runs] == ["share0.3", "share0.6"] and runs[0].run_id != runs[1].run_id
    # renaming a label is not another run
    renamed = parse_spec({**MINIMAL, "trainers": [{**labelled[0], "label": "early"}, labelled[1]]}, tmp_path)
    assert renamed.variants()[0].settings_id == spec.variants()[0].settings_id
    same = [labelled[0], {**labelled[0], "label": "again"}]
    with pytest.raises(ProgressiveConfigError, match="'share0.3' and 'again' are the same runs"):
        parse_spec({**MINIMAL, "trainers": same}, tmp_path)


@pytest.mark.parametrize("knobs, message", [
    ({"NNPROG_EPOCH": 5}, "NNPROG_EPOCH is not a knob.*did you mean NNPROG_EPOCHS"),
    ({"nnprog_epochs": 5}, "nnprog_epochs is not a knob.*did you mean NNPROG_EPOCHS"),
    ({"NN_PROG_EPOCHS": 5}, "NN_PROG_EPOCHS is not a knob.*did you mean NNPROG_EPOCHS"),
    ({"NNPROG_EPOCHS": 0}, "knobs: NNPROG_EPOCHS: must be >= 1"),
    ({"NNPROG_DICE_METHOD": "hausdorff"}, "NNPROG_DICE_METHOD: must be one of"),
])
def test_spec_knobs_are_checked_against_the_knob_table(tmp_path, knobs, message):
    with pytest.raises(ProgressiveConfigError, match=message):
        parse_spec({**MINIMAL, "knobs": knobs}, tmp_path)
    with pytest.raises(ProgressiveConfigError, match=r"trainers\[0\]\.knobs"):
        parse_spec({**MINIMAL, "trainers": [{"name": "nnUNetTrainer_PGPS_Efficiency", "knobs": knobs}]}, tmp_path)


def test_every_problem_of_a_spec_is_listed_at_once(tmp_path):
    with pytest.raises(ProgressiveConfigError) as failure:
        parse_spec({**MINIMAL, "folds": [-1], "executor": {"type": "cloud"}, "seeds": ["a"]}, tmp_path)
    text = str(failure.value)
    assert "folds[0]" in text and "executor.type" in text and "seeds[0]" in text


def test_seed_training_seeds_each_repeat_and_is_part_of_the_settings(tmp_path):
    """`seed_training: true`: repeat s trains with NNPROG_SEED=s; seeded runs are other runs than unseeded ones."""
    base = {**MINIMAL, "trainers": ["nnUNetTrainer_ConstantPatch"], "folds": [0, 1], "seeds": [0, 2]}
    plain = parse_spec(base, tmp_path)
    seeded = parse_spec({**base, "seed_training": True}, tmp_path)
    assert not plain.seed_training and seeded.seed_training
    assert _variant_ids(base, tmp_path) != _variant_ids({**base, "seed_training": True}, tmp_path)
    runs = expand_runs(seeded, ["Dataset001_X"])
    assert [(r.fold, r.seed, r.knobs.get("NNPROG_SEED")) for r in runs] == [(0, 0, "0"), (0, 2, "2"), (1, 0, "0"),
                                                                             (1, 2, "2")]
    assert all(r.settings["seed_training"] is True for r in runs)
    assert all("NNPROG_SEED" not in r.knobs for r in expand_runs(plain, ["Dataset001_X"]))
    assert len({r.run_id for r in runs}) == 4
    # the report reads the same settings ids back from spec.json
    from nnunet_progressive.benchmark.spec import SpecTrainers

    back = SpecTrainers.model_validate(seeded.to_dict())
    assert [v.settings_id for v in back.variants()] == [v.settings_id for v in seeded.variants()]


@pytest.mark.parametrize("where", ["global", "trainer"])
def test_seed_knob_in_a_spec_is_refused_for_the_seeds_list(tmp_path, where):
    data = {**MINIMAL, "trainers": ["nnUNetTrainer_ConstantPatch"]}
    if where == "global":
        data["knobs"] = {"NNPROG_SEED": 3}
    else:
        data["trainers"] = [{"name": "nnUNetTrainer_ConstantPatch", "knobs": {"NNPROG_SEED": 3}}]
    with pytest.raises(ProgressiveConfigError, match="NNPROG_SEED is set in .*seed_training: true"):
        parse_spec(data, tmp_path)
