"""The preprocessed label maps at the start of a new run (issue #20): undeclared label values (nnU-Net, planned
without --verify_dataset_integrity, keeps them and stops in its loss with a traceback, or learns them silently), label
maps off their images' shape, and no foreground in any case."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from nnunet_progressive.nnunet.hooks.label_check import (
    background_values,
    declared_label_values,
    no_foreground_problem,
    shape_mismatch_problem,
    undeclared_values_problem,
)
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


def test_label_maps_off_their_images_shape_are_named_with_both_shapes():
    assert shape_mismatch_problem({"a": ((4, 5, 6), (4, 5, 6))}, "Dataset9_X", "9") is None
    problem = shape_mismatch_problem({"a": ((4, 5, 6), (4, 5, 6)), "b": ((4, 5, 6), (4, 5, 5))}, "Dataset9_X", "9")
    assert problem.startswith("Dataset9_X: the preprocessed label maps of 1 case(s) differ in shape from their "
                              "images: b (e.g. b: image 4x5x6, label map 4x5x5)")
    assert "nnprog check-dataset 9" in problem
    assert problem.endswith("nnUNetv2_plan_and_preprocess -d 9 --verify_dataset_integrity")


def test_no_foreground_in_any_case_is_one_message_and_one_case_with_foreground_is_enough():
    background = background_values({"labels": {"background": 0, "organ": 1, "ignore": 2}})
    assert background == {-1, 0, 2}, "0, nnU-Net's outside value and the ignore label"
    assert background_values({"labels": {"background": 0, "organ": 1}}) == {-1, 0}
    assert no_foreground_problem({"a": [0], "b": [-1, 0, 1]}, background, "Dataset9_X", "9") is None
    assert no_foreground_problem({}, background, "Dataset9_X", "9") is None, "no cases: nnU-Net says so itself"
    problem = no_foreground_problem({"a": [0], "b": [-1, 0, 2]}, background, "Dataset9_X", "9")
    assert problem.startswith("Dataset9_X: none of the 2 preprocessed label maps holds foreground (values "
                              "[-1, 0, 2] only): training would learn nothing.")
    assert "nnprog check-dataset 9" in problem


def _copy_preprocessed(tiny3d_dataset, folders: NnunetFolders, name: str):
    """tiny3d's preprocessed data under another name (its plans renamed too)."""
    target = folders.preprocessed / name
    shutil.copytree(tiny3d_dataset.preprocessed_dataset, target)
    for plans_file in target.glob("nnUNetPlans*.json"):
        plans = json.loads(plans_file.read_text())
        plans["dataset_name"] = target.name
        plans_file.write_text(json.dumps(plans))
    return target


def _start(tiny3d_dataset, folders: NnunetFolders, dataset_id: str):
    run = TrainingRun(dataset_id, "3d_fullres", 0, "nnUNetTrainer_ConstantPatch", tiny3d_dataset.plans,
                      knobs={"NNPROG_EPOCHS": "1", "NNPROG_ITERATIONS": "1"})
    return subprocess.run(run.command(), env=run_environment(folders, run.knobs), capture_output=True, text=True,
                          timeout=600)


@pytest.mark.e2e
@pytest.mark.parametrize("fault", ["all background", "one label map cropped"])
def test_a_new_run_on_label_maps_without_foreground_or_off_their_images_stops_with_one_message(
        tiny3d_dataset, tmp_path, fault):
    """What nnU-Net's planning would refuse (a traceback each) but preprocessed data changed afterwards, or
    preprocessed with another dataset's plans, can still hold: every label map background, or one of another shape
    than its image."""
    import blosc2
    import numpy as np

    folders = NnunetFolders.under(tmp_path)
    target = _copy_preprocessed(tiny3d_dataset, folders, "Dataset522_Faulty")
    segs = sorted(target.glob("*/*_seg.b2nd"))
    assert len(segs) == 8, segs
    for seg_file in segs if fault == "all background" else segs[:1]:
        seg = np.asarray(blosc2.open(str(seg_file), mode="r")[:])
        changed = np.where(seg > 0, 0, seg) if fault == "all background" else seg[:, :-3]
        seg_file.unlink()
        blosc2.asarray(np.ascontiguousarray(changed), urlpath=str(seg_file))
    started = _start(tiny3d_dataset, folders, "522")
    assert started.returncode != 0 and "Traceback" not in started.stderr, started.stderr[-3000:]
    last = started.stderr.strip().splitlines()[-1]
    expected = ("none of the 8 preprocessed label maps holds foreground" if fault == "all background" else
                "the preprocessed label maps of 1 case(s) differ in shape from their images: ")
    assert last.startswith(f"nnUNetv2_train: error: Dataset522_Faulty: {expected}"), last
    assert last.count("Dataset522_Faulty: ") == 1, "one problem, said once"
    assert not (folders.results / target.name).exists(), "a refused start leaves nothing in nnUNet_results"


@pytest.mark.e2e
def test_a_new_run_on_label_maps_with_an_undeclared_value_stops_with_one_message(tiny3d_dataset, tmp_path):
    """tiny3d's preprocessed data under another id, its dataset.json without the label 'lesion' (value 2): what
    planning without --verify_dataset_integrity leaves."""
    folders = NnunetFolders.under(tmp_path)
    target = _copy_preprocessed(tiny3d_dataset, folders, "Dataset521_Undeclared")
    dataset_json = json.loads((target / "dataset.json").read_text())
    dataset_json["labels"] = {k: v for k, v in dataset_json["labels"].items() if v != 2}
    assert len(dataset_json["labels"]) == 2, dataset_json["labels"]
    (target / "dataset.json").write_text(json.dumps(dataset_json))
    started = _start(tiny3d_dataset, folders, "521")
    assert started.returncode != 0 and "Traceback" not in started.stderr, started.stderr[-3000:]
    assert started.stderr.strip().splitlines()[-1].startswith(
        "nnUNetv2_train: error: Dataset521_Undeclared: the preprocessed label maps of 8 case(s) hold values that "
        "dataset.json's labels [0, 1] do not declare: ")
    assert not (folders.results / target.name).exists(), "a refused start leaves nothing in nnUNet_results"
