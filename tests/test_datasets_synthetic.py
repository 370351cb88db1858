"""Tests for nnunet_progressive.datasets.synthetic (synthetic nnU-Net v2 raw datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_progressive.datasets.synthetic import (
    PRESETS,
    SyntheticDatasetSpec,
    generate_case,
    write_dataset,
    write_preset,
)

TINY3D = PRESETS["tiny3d"]
TINY2D = PRESETS["tiny2d"]
# Small variants of every preset (a few cases, same geometry) keep the per-preset checks fast.
SMALL_PRESETS = {k: v.replace(num_cases=2) for k, v in PRESETS.items()}


def _read(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image.GetSpacing()


def test_presets_exist_and_match_brief() -> None:
    assert {"demo", "tiny3d", "tiny2d", "anisotropic", "multiorgan", "multichannel_mri"} <= set(PRESETS)
    assert PRESETS["demo"].shape == (64, 64, 64) and PRESETS["demo"].num_cases == 12
    assert TINY3D.shape == (32, 32, 32) and TINY3D.num_cases == 8
    assert TINY2D.shape == (64, 64) and TINY2D.num_cases == 8
    assert PRESETS["anisotropic"].shape == (20, 64, 64) and PRESETS["anisotropic"].spacing == (4.0, 1.0, 1.0)
    assert PRESETS["multiorgan"].num_organs == 3
    mri = PRESETS["multichannel_mri"]
    assert mri.num_channels == 4 and mri.modality == "MRI" and mri.shape == (48, 48, 48)


@pytest.mark.parametrize("preset", sorted(SMALL_PRESETS))
def test_every_label_in_every_case_and_small_lesions(preset: str) -> None:
    spec = SMALL_PRESETS[preset]
    n_labels = spec.num_organs + (1 if spec.num_lesions else 0) + 1
    for i in range(3):  # one more case than num_cases: indices beyond it are allowed
        image, label = generate_case(spec, i)
        assert image.shape == (spec.num_channels, *spec.shape) and image.dtype == np.float32
        assert label.shape == spec.shape and label.dtype == np.uint8
        assert np.isfinite(image).all()
        assert set(np.unique(label).tolist()) == set(range(n_labels)), (preset, i)
        lesion_share = float((label == spec.num_organs + 1).mean())
        assert 0 < lesion_share < 0.02, (preset, i, lesion_share)
        if spec.modality == "MRI":
            assert image.min() >= 0


def test_deterministic_and_cases_differ() -> None:
    a_img, a_lab = generate_case(TINY3D, 3)
    b_img, b_lab = generate_case(TINY3D, 3)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, c_lab = generate_case(TINY3D, 4)
    assert not np.array_equal(a_lab, c_lab) and not np.array_equal(a_img, c_img)
    d_img, _ = generate_case(TINY3D.replace(seed=1), 3)
    assert not np.array_equal(a_img, d_img)


def test_structures_have_distinct_contrast() -> None:
    spec = TINY3D.replace(noise_std=0.0)
    image, label = generate_case(spec, 0)
    img = image[0]
    organ, lesion = img[label == 1].mean(), img[label == 2].mean()
    body_bg = np.median(img[(label == 0) & (img > -500)])
    outside = np.median(img[img < -500])
    assert outside < body_bg  # tissue inside the body is brighter than air
    assert abs(organ - body_bg) > 30 and abs(lesion - organ) > 30 and abs(lesion - body_bg) > 20


def test_multichannel_mri_channels_differ() -> None:
    spec = PRESETS["multichannel_mri"].replace(noise_std=0.0)
    image, label = generate_case(spec, 0)
    # Lesion/organ contrast ratio differs between sequences (e.g. dark on T1, bright on T2).
    ratios = [image[c][label == 2].mean() / image[c][label == 1].mean() for c in range(4)]
    assert min(ratios) < 1 < max(ratios)


def test_write_dataset_layout_json_and_spacing(tmp_path: Path) -> None:
    spec = PRESETS["anisotropic"].replace(num_cases=2, num_channels=2)
    folder = write_dataset(spec, tmp_path, 7)
    assert folder == tmp_path / "Dataset007_NNProgAniso"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1", "1": "T2"}
    assert meta["labels"] == {"background": 0, "organ1": 1, "lesion": 2}
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
    names = sorted(p.name for p in (folder / "imagesTr").iterdir())
    assert names == [f"NNProgAniso_{i:03d}_{c:04d}.nii.gz" for i in range(2) for c in range(2)]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["NNProgAniso_000.nii.gz",
                                                                       "NNProgAniso_001.nii.gz"]
    arr, itk_spacing = _read(folder / "imagesTr" / "NNProgAniso_001_0001.nii.gz")
    assert arr.shape == (20, 64, 64)
    assert itk_spacing == pytest.approx((1.0, 1.0, 4.0))  # ITK is x, y, z
    lab, lab_spacing = _read(folder / "labelsTr" / "NNProgAniso_001.nii.gz")
    assert lab_spacing == itk_spacing
    image, label = generate_case(spec, 1)
    np.testing.assert_array_equal(lab, label)
    np.testing.assert_allclose(arr, image[1], rtol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_2d_is_written_as_single_slice(tmp_path: Path) -> None:
    folder = write_dataset(TINY2D.replace(num_cases=2, spacing=(0.8, 0.5)), tmp_path, 8)
    arr, itk_spacing = _read(folder / "imagesTr" / "NNProgTiny2D_000_0000.nii.gz")
    assert arr.shape == (1, 64, 64)
    assert itk_spacing == pytest.approx((0.5, 0.8, 999.0))
    lab, _ = _read(folder / "labelsTr" / "NNProgTiny2D_000.nii.gz")
    assert lab.shape == (1, 64, 64) and set(np.unique(lab).tolist()) == {0, 1, 2}
    # nnU-Net's own reader sees one slice with spacing [999, sy, sx] (numpy order).
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    data, props = SimpleITKIO().read_images([str(folder / "imagesTr" / "NNProgTiny2D_000_0000.nii.gz")])
    assert data.shape == (1, 1, 64, 64)
    assert props["spacing"] == pytest.approx([999.0, 0.8, 0.5])


def test_overwrite_behaviour(tmp_path: Path) -> None:
    spec = TINY3D.replace(num_cases=2)
    folder = write_dataset(spec, tmp_path, 3)
    (folder / "marker.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True") as err:
        write_dataset(spec, tmp_path, 3)
    assert "Dataset003_NNProgTiny3D" in str(err.value)
    assert (folder / "marker.txt").exists()  # untouched after the refusal

    folder2 = write_dataset(spec.replace(num_cases=3), tmp_path, 3, overwrite=True)
    assert folder2 == folder and not (folder / "marker.txt").exists()
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 3
    assert len(list((folder / "labelsTr").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset003_NNProgTiny3D"]

    # Another name with the same id would make nnU-Net's id lookup ambiguous: refuse, even with overwrite.
    with pytest.raises(FileExistsError, match="Dataset003_NNProgTiny3D"):
        write_dataset(spec.replace(name="Other"), tmp_path, 3, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset003_NNProgTiny3D"]


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nnunet_progressive.datasets.synthetic as synthetic

    calls = {"n": 0}
    real = synthetic.generate_case

    def flaky(spec: SyntheticDatasetSpec, i: int) -> tuple[np.ndarray, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full (simulated)")
        return real(spec, i)

    monkeypatch.setattr(synthetic, "generate_case", flaky)
    spec = TINY3D.replace(num_cases=2)
    with pytest.raises(RuntimeError, match="simulated"):
        write_dataset(spec, tmp_path, 4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"num_cases": 1}, "num_cases"),
        ({"shape": (64, 64, 64, 64), "spacing": (1.0,) * 4}, "shape"),
        ({"shape": (8, 64, 64)}, ">= 16"),
        ({"spacing": (1.0, 1.0)}, "spacing"),
        ({"spacing": (1.0, -1.0, 1.0)}, "positive"),
        ({"num_channels": 0}, "num_channels"),
        ({"num_organs": 0, "num_lesions": 0}, "num_organs >= 1 or num_lesions >= 1"),
        ({"modality": "PET"}, "'CT', 'MRI'"),
        ({"name": "bad/name"}, "name"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_specs_raise_value_error(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match="expected") as err:
        SyntheticDatasetSpec(**{"name": "X", **overrides})
    assert fragment in str(err.value)
    assert "got" in str(err.value)


def test_lists_are_accepted_and_stored_as_tuples() -> None:
    spec = SyntheticDatasetSpec(name="X", shape=[16, 16, 16], spacing=[2, 1, 1])  # type: ignore[arg-type]
    assert spec.shape == (16, 16, 16) and spec.spacing == (2, 1, 1)
    hash(spec)


def test_write_preset_and_its_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiny3d"):
        write_preset("nope", tmp_path, 1)
    with pytest.raises(ValueError, match="num_casess"):
        write_preset("tiny3d", tmp_path, 1, num_casess=2)
    with pytest.raises(ValueError, match="dataset_id"):
        write_preset("tiny3d", tmp_path, 1000)
    folder = write_preset("tiny3d", tmp_path, 12, num_cases=2, seed=5)
    assert folder.name == "Dataset012_NNProgTiny3D"
    assert json.loads((folder / "dataset.json").read_text())["synthetic_spec"]["seed"] == 5
    with pytest.raises(ValueError, match="case_index"):
        generate_case(TINY3D, -1)


@pytest.mark.parametrize("preset", ["tiny3d", "tiny2d"])
def test_nnunet_verify_dataset_integrity(preset: str, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = write_preset(preset, tmp_path, 42)
    verify_dataset_integrity(str(folder), num_processes=1)  # raises on errors
    out = capfd.readouterr()
    text = out.out + out.err
    assert "verify_dataset_integrity Done" in text
    # Problems found in the worker processes are only printed (origin/direction warnings never raise).
    for marker in ("Error:", "ERROR!", "Warning:", "WARNING!", "mismatch", "Unexpected"):
        assert marker not in text, text
