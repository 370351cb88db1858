"""Why a raw dataset cannot be planned (datasets/integrity.py), and the one message the package's preparation
gives for it (issue #20: bad datasets)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.naming import background_label_values
from nnunet_progressive.datasets.integrity import (
    CaseSummary,
    expected_label_values,
    raw_dataset_problems,
    summarise_raw_dataset,
)


def _case(case_id: str, values=(0, 1), label_shape=(8, 8, 8), image_shape=(8, 8, 8), spacing=(1.0, 1.0, 1.0),
          label_spacing=(1.0, 1.0, 1.0)) -> CaseSummary:
    return CaseSummary(case_id, frozenset(values), label_shape, label_spacing, (image_shape,), (spacing,))


def test_a_sound_dataset_has_no_problems():
    assert raw_dataset_problems([_case("a"), _case("b", values=(0,)), _case("c", values=(0, 2))], {0, 1, 2}) == []


def test_unexpected_label_values_name_the_cases_and_values():
    problems = raw_dataset_problems([_case("a", values=(0, 1, 5)), _case("b"), _case("c", values=(0, 7))], {0, 1})
    assert len(problems) == 1 and "in 2 case(s): a, c" in problems[0] and "a: [5]" in problems[0]
    assert "dataset.json" in problems[0]


@pytest.mark.parametrize("change", [{"label_shape": (7, 8, 8)}, {"label_spacing": (2.0, 1.0, 1.0)},
                                   {"image_shape": (8, 8)}])
def test_label_geometry_off_its_image_is_named(change):
    problems = raw_dataset_problems([_case("a"), _case("b", **change)], {0, 1})
    assert problems == ["label map and image differ in shape or spacing in 1 case(s): b; resample or re-export the "
                        "label maps onto their images"]
    assert raw_dataset_problems([_case("b", label_spacing=(1.0004, 1.0, 1.0))], {0, 1}) == [], "rounding passes"


def test_no_foreground_anywhere_is_a_problem_but_some_empty_cases_are_not():
    assert raw_dataset_problems([_case("a", values=(0,)), _case("b", values=(0,))], {0, 1}) == [
        "no foreground in any of the 2 label maps (every voxel is background 0): nothing to learn; check that "
        "labelsTr holds the segmentations"]
    assert raw_dataset_problems([_case("a", values=(0,)), _case("b")], {0, 1}) == []
    only_ignored = [_case("a", values=(0, 2)), _case("b", values=(0,))]  # 2: dataset.json's ignore label
    assert raw_dataset_problems(only_ignored, {0, 1, 2}, background_label_values({"labels": {"ignore": 2}})) == [
        "no foreground in any of the 2 label maps (every voxel is background 0 or the ignore label 2): nothing to "
        "learn; check that labelsTr holds the segmentations"], "as the start-of-run check counts it"
    assert len(raw_dataset_problems([_case("a", values=(0, 9)), _case("b", values=(0,), label_shape=(1, 1, 1))],
                                    {0, 1})) == 2, "each kind of problem is listed"


def test_expected_label_values_read_region_labels():
    assert expected_label_values({"labels": {"background": 0, "a": 1, "ab": [1, 2], "ignore": 3}}) == {0, 1, 2, 3}


def _write_raw(folder, cases: dict[str, tuple[np.ndarray, np.ndarray]], labels=None) -> None:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for case_id, (image, label) in cases.items():
        sitk.WriteImage(sitk.GetImageFromArray(image), str(folder / "imagesTr" / f"{case_id}_0000.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(label), str(folder / "labelsTr" / f"{case_id}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": labels or {"background": 0, "organ": 1},
        "numTraining": len(cases), "file_ending": ".nii.gz"}))


def test_summaries_are_read_with_nnunets_reader(tmp_path):
    image = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    label = np.zeros((6, 7, 8), np.uint8)
    label[2, 3, 4] = 3
    _write_raw(tmp_path / "Dataset777_X", {"X_000": (image, label), "X_001": (image, label[:5])})
    summaries = {s.case_id: s for s in summarise_raw_dataset(tmp_path / "Dataset777_X")}
    assert summaries["X_000"].label_values == {0, 3} and summaries["X_000"].label_shape == (6, 7, 8)
    assert summaries["X_001"].label_shape == (5, 7, 8) and summaries["X_001"].image_shapes == ((6, 7, 8),)
    problems = raw_dataset_problems(summaries.values(), {0, 1})
    assert "X_000, X_001 (e.g. X_000: [3])" in problems[0] and "1 case(s): X_001" in problems[1]


@pytest.mark.e2e
def test_preparation_of_an_all_background_dataset_is_one_message(tiny3d_dataset, tmp_path):
    """nnU-Net's planning crashes with an IndexError on it; the package's preparation says what is wrong."""
    from nnunet_progressive.datasets.prepare import plan_and_preprocess
    from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

    source = tiny3d_dataset.folders.raw / tiny3d_dataset.dataset_name
    folders = NnunetFolders(tmp_path / "raw", tmp_path / "pre", tmp_path / "res")
    target = folders.raw / "Dataset777_Empty"
    shutil.copytree(source, target)
    dataset_json = json.loads((target / "dataset.json").read_text())
    for label_file in (target / "labelsTr").iterdir():
        image = sitk.ReadImage(str(label_file))
        empty = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) * 0)
        empty.CopyInformation(image)
        sitk.WriteImage(empty, str(label_file))
    with pytest.raises(ProgressiveConfigError, match=r"nnU-Net cannot plan .*Dataset777_Empty .*no foreground in any "
                                                     rf"of the {dataset_json['numTraining']} label maps"):
        plan_and_preprocess(777, folders, ("3d_fullres",), 1, tmp_path / "plan.log")
    assert "IndexError" in (tmp_path / "plan.log").read_text(), "nnU-Net's own failure is kept in its log"
