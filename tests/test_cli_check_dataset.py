"""`nnprog check-dataset` (issue #20): a raw dataset checked before planning, each problem in one line; nnU-Net's
planning reports them as tracebacks (or plans a label map of another spacing without a word)."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from nnunet_progressive.cli.main import main


def _write_raw(folder, cases: dict[str, tuple[np.ndarray, np.ndarray]], label_spacing=None) -> None:
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for case_id, (image, label) in cases.items():
        sitk.WriteImage(sitk.GetImageFromArray(image), str(folder / "imagesTr" / f"{case_id}_0000.nii.gz"))
        label_image = sitk.GetImageFromArray(label)
        if label_spacing and case_id in label_spacing:
            label_image.SetSpacing(label_spacing[case_id])
        sitk.WriteImage(label_image, str(folder / "labelsTr" / f"{case_id}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1}, "numTraining": len(cases),
        "file_ending": ".nii.gz"}))


def _cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


IMAGE = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
LABEL = np.zeros((6, 7, 8), np.uint8)
LABEL[2:4, 3:5, 4:6] = 1


def test_a_good_dataset_passes_by_id_and_by_folder(tmp_path, capsys, monkeypatch):
    _write_raw(tmp_path / "Dataset778_Good", {"G_000": (IMAGE, LABEL), "G_001": (IMAGE, LABEL * 0)})
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    for argument in ("778", "Dataset778_Good", str(tmp_path / "Dataset778_Good")):
        code, out, err = _cli(["check-dataset", argument], capsys)
        assert code == 0 and err == "", err
        assert "2 training cases; label values, label maps on their images and foreground are fine. Next: " \
               "nnUNetv2_plan_and_preprocess -d 778 --verify_dataset_integrity" in out


def test_every_problem_is_one_line_with_its_cases(tmp_path, capsys):
    wrong_value = LABEL * 3
    _write_raw(tmp_path / "Dataset779_Bad", {
        "B_000": (IMAGE, wrong_value), "B_001": (IMAGE, LABEL[:5]), "B_002": (IMAGE, LABEL)},
        label_spacing={"B_002": (1.0, 1.0, 2.5)})
    code, out, err = _cli(["check-dataset", str(tmp_path / "Dataset779_Bad")], capsys)
    assert code == 1 and err == "", err
    lines = out.strip().splitlines()
    assert lines[0].startswith("problem: label values not in dataset.json's labels [0, 1] in 1 case(s): B_000 "
                               "(e.g. B_000: [3])"), lines
    assert lines[1].startswith("problem: label map and image differ in shape or spacing in 2 case(s): B_001, B_002")
    assert lines[2].startswith("2 problem(s) in ") and lines[2].endswith(
        "(3 training cases); fix them, then nnUNetv2_plan_and_preprocess -d 779 --verify_dataset_integrity")


def test_a_dataset_without_foreground_is_named(tmp_path, capsys):
    _write_raw(tmp_path / "Dataset780_Empty", {"E_000": (IMAGE, LABEL * 0), "E_001": (IMAGE, LABEL * 0)})
    code, out, _ = _cli(["check-dataset", str(tmp_path / "Dataset780_Empty")], capsys)
    assert code == 1 and out.startswith("problem: no foreground in any of the 2 label maps")


def test_what_cannot_be_checked_is_one_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    code, _, err = _cli(["check-dataset", "781"], capsys)
    assert code == 2 and err.strip() == (f"nnprog check-dataset: error: dataset 781: no folder in nnUNet_raw "
                                         f"({tmp_path}); give the dataset's folder or its full name")
    code, _, err = _cli(["check-dataset", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "is not a raw dataset folder (no dataset.json in it)" in err
    _write_raw(tmp_path / "Dataset782_Damaged", {"D_000": (IMAGE, LABEL), "D_001": (IMAGE, LABEL)})
    label = tmp_path / "Dataset782_Damaged" / "labelsTr" / "D_001.nii.gz"
    label.write_bytes(label.read_bytes()[:40])
    code, _, err = _cli(["check-dataset", "782"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "case D_001 of " in err and "D_001_0000.nii.gz, D_001.nii.gz: replace the damaged or missing file" in err
    (tmp_path / "Dataset783_NoLabels").mkdir()
    (tmp_path / "Dataset783_NoLabels" / "dataset.json").write_text("{\"labels\": {\"background\": 0}, "
                                                                    "\"file_ending\": \".nii.gz\"}")
    code, _, err = _cli(["check-dataset", "783"], capsys)
    assert code == 2 and "has no imagesTr folder" in err
