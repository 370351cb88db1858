"""The MNI152 tissue dataset: real template anatomy from nilearn's wheel, valid for nnU-Net."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.datasets.mni152 import write_mni152_dataset


def test_cases_differ_have_both_tissues_and_pass_nnunet_integrity(tmp_path, capfd):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = write_mni152_dataset(tmp_path / "raw", dataset_id=520, num_cases=3, spacing_mm=4.0)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "grey_matter": 1, "white_matter": 2}
    images = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((folder / "imagesTr").iterdir())]
    labels = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((folder / "labelsTr").iterdir())]
    assert len(images) == len(labels) == 3 and images[0].shape == labels[0].shape
    for label in labels:
        shares = np.bincount(label.ravel(), minlength=3) / label.size
        assert 0.05 < shares[1] < 0.3 and 0.05 < shares[2] < 0.3, shares  # brain tissue, realistic balance
    assert not np.array_equal(labels[0], labels[1]), "every case is moved differently"
    assert sitk.ReadImage(str(next((folder / "imagesTr").iterdir()))).GetSpacing() == (4.0, 4.0, 4.0)
    capfd.readouterr()
    verify_dataset_integrity(str(folder), num_processes=1)
    output = capfd.readouterr()
    assert "mismatch" not in (output.out + output.err).lower()


def test_bad_settings_and_overwrite(tmp_path):
    with pytest.raises(ProgressiveConfigError, match="num_cases"):
        write_mni152_dataset(tmp_path, num_cases=1)
    with pytest.raises(ProgressiveConfigError, match="spacing_mm"):
        write_mni152_dataset(tmp_path, spacing_mm=0.5)
    write_mni152_dataset(tmp_path, num_cases=2, spacing_mm=6.0)
    with pytest.raises(FileExistsError, match="overwrite"):
        write_mni152_dataset(tmp_path, num_cases=2, spacing_mm=6.0)
    assert [p.name for p in tmp_path.iterdir()] == ["Dataset520_NNProgMNI152Tissue"], "no temporary folder left"


def test_benchmark_spec_accepts_the_mni152_dataset(tmp_path):
    from nnunet_progressive.benchmark.spec import parse_spec
    from nnunet_progressive.datasets.generated import generated_dataset_names, generated_task_name

    assert "mni152" in generated_dataset_names() and "tiny3d" in generated_dataset_names()
    spec = parse_spec({"results_dir": str(tmp_path), "trainers": ["nnUNetTrainer_ConstantPatch"],
                       "datasets": [{"id": 520, "configurations": ["3d_fullres"],
                                     "prepare": {"synthetic_preset": "mni152"}}]}, base_dir=tmp_path)
    assert spec.datasets[0].synthetic_preset == "mni152"
    assert generated_task_name("mni152") == "NNProgMNI152Tissue"
