"""Undeclared label values at the start of a new run (issue #20): nnU-Net, planned without
--verify_dataset_integrity, keeps them and stops in its loss with a traceback, or learns them silently."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from nnunet_progressive.nnunet.hooks.label_check import declared_label_values, undeclared_values_problem
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, TrainingRun, run_environment


def test_values_dataset_json_does_not_declare_are_named_with_their_cases():
    declared = declared_label_values({"labels": {"background": 0, "liver": 1, "tumour": 3}})
    assert declared == {-1, 0, 1, 3}, "-1 is nnU-Net's value outside the nonzero mask"
    assert undeclared_values_problem({"a": [0, 1], "b": [-1, 0, 3]}, declared, "Dataset9_X", "9") is None
    problem = undeclared_values_problem({f"case{i}": [0, 1, 2] for i in range(7)}, declared, "Dataset9_X", "9")
    assert problem.startswith("Dataset9_X: the preprocessed label maps of 7 case(s) hold values that dataset.json's "
                              "labels [0, 1, 3] do not declare: case0, case1, case2, case3, case4 and 2 more "
                              "(e.g. case0: [2])")
    assert problem.endswith("nnUNetv2_plan_and_preprocess -d 9 --verify_dataset_integrity")
    regions = declared_label_values({"labels": {"background": 0, "whole": [1, 2], "core": 2}})
    assert regions == {-1, 0, 1, 2}


@pytest.mark.e2e
def test_a_new_run_on_label_maps_with_an_undeclared_value_stops_with_one_message(tiny3d_dataset, tmp_path):
    """tiny3d's preprocessed data under another id, its dataset.json without the label 'lesion' (value 2): what
    planning without --verify_dataset_integrity leaves."""
    source = tiny3d_dataset.preprocessed_dataset
    folders = NnunetFolders.under(tmp_path)
    target = folders.preprocessed / "Dataset521_Undeclared"
    shutil.copytree(source, target)
    dataset_json = json.loads((target / "dataset.json").read_text())
    dataset_json["labels"] = {k: v for k, v in dataset_json["labels"].items() if v != 2}
    assert len(dataset_json["labels"]) == 2, dataset_json["labels"]
    (target / "dataset.json").write_text(json.dumps(dataset_json))
    for plans_file in target.glob("nnUNetPlans*.json"):
        plans = json.loads(plans_file.read_text())
        plans["dataset_name"] = target.name
        plans_file.write_text(json.dumps(plans))
    run = TrainingRun("521", "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d_dataset.plans,
                      knobs={"NNPROG_EPOCHS": "1", "NNPROG_ITERATIONS": "1"})
    started = subprocess.run(run.command(), env=run_environment(folders, run.knobs), capture_output=True, text=True,
                             timeout=600)
    assert started.returncode != 0 and "Traceback" not in started.stderr, started.stderr[-3000:]
    assert started.stderr.strip().splitlines()[-1].startswith(
        "nnUNetv2_train: error: Dataset521_Undeclared: the preprocessed label maps of 8 case(s) hold values that "
        "dataset.json's labels [0, 1] do not declare: ")
    assert not (folders.results / target.name).exists(), "a refused start leaves nothing in nnUNet_results"
