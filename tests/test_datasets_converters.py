"""Benchmark dataset converters on tiny fake trees that mirror each official download layout.

Every converter's output is checked for structure; a representative set also goes through nnU-Net's own
``verify_dataset_integrity`` (several seconds each: it starts a spawn pool).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_progressive.cli.main import main
from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.datasets.converters import TASKS, CaseCountError, SourceLayoutError, convert
from nnunet_progressive.datasets.converters.totalsegmentator import CLASSES, SUBSETS

SHAPE = (16, 16, 16)  # numpy (z, y, x) for SimpleITK writers, (x, y, z) for nibabel: all axes equal here
_RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------------------------- fake files


def _label_array(num_classes: int, seed: int) -> np.ndarray:
    """Blocks of every value 0..num_classes (one per slab) so every class is present."""
    label = np.zeros(SHAPE, dtype=np.uint8)
    flat = label.reshape(-1)
    chunks = np.array_split(np.arange(flat.size), num_classes + 1)
    for value, idx in enumerate(chunks):
        flat[idx] = value
    return np.roll(label, seed, axis=0)


def _sitk_write(path: Path, array: np.ndarray, spacing=(0.8, 0.8, 2.5), origin=(-100.0, -120.0, -300.0),
                direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection([float(d) for d in direction])
    sitk.WriteImage(image, str(path), useCompression=path.suffix == ".gz")


def _nib_write(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([0.8, 0.8, 1.5, 1.0]) if affine is None else affine), path)


def _ct() -> np.ndarray:
    return _RNG.integers(-1000, 1000, SHAPE).astype(np.int16)


def _junk(path: Path) -> None:
    """A macOS AppleDouble file as found in tarballs made on a Mac (not an image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x05\x16\x07junk")


# ----------------------------------------------------------------------------------------------- fake trees


def make_msd(root: Path, folder: str, num_cases: int, channels: int, labels: dict[str, str],
             prefix: str) -> Path:
    """MSD TaskXX_Name: dataset.json (MSD style), 4D images when channels > 1, imagesTs, '._' junk files."""
    task = root / folder
    for i in range(1, num_cases + 1):
        image = _RNG.random(SHAPE + ((channels,) if channels > 1 else ())).astype(np.float32)
        _nib_write(task / "imagesTr" / f"{prefix}_{i:03d}.nii.gz", image)
        _nib_write(task / "labelsTr" / f"{prefix}_{i:03d}.nii.gz", _label_array(len(labels) - 1, i))
        _junk(task / "imagesTr" / f"._{prefix}_{i:03d}.nii.gz")
        _junk(task / "labelsTr" / f"._{prefix}_{i:03d}.nii.gz")
    _nib_write(task / "imagesTs" / f"{prefix}_900.nii.gz",
               _RNG.random(SHAPE + ((channels,) if channels > 1 else ())).astype(np.float32))
    modality = {str(c): n for c, n in enumerate(["FLAIR", "T1w", "t1gd", "T2w"][:channels])} if channels > 1 \
        else {"0": "CT"}
    (task / "dataset.json").write_text(json.dumps({
        "name": prefix, "description": "fake", "licence": "CC-BY-SA 4.0", "release": "1.0 04/05/2018",
        "tensorImageSize": "4D" if channels > 1 else "3D", "modality": modality, "labels": labels,
        "numTraining": 999, "numTest": 1,
        "training": [{"image": f"./imagesTr/{prefix}_{i:03d}.nii.gz", "label": f"./labelsTr/{prefix}_{i:03d}.nii.gz"}
                     for i in range(1, num_cases + 1)],
        "test": [f"./imagesTs/{prefix}_900.nii.gz"]}))
    return task


def make_btcv(root: Path, numbers=(1, 2, 21)) -> Path:
    """RawData/Training/img/imgNNNN.nii.gz + label/labelNNNN.nii.gz; one label with a slightly shifted origin."""
    for k, n in enumerate(numbers):
        _sitk_write(root / "RawData" / "Training" / "img" / f"img{n:04d}.nii.gz", _ct())
        # the header quirk: same grid, origin 0.5 mm off along z (0.2 of a 2.5 mm voxel)
        origin = (-100.0, -120.0, -300.0 + 0.5 * (k == 0))
        _sitk_write(root / "RawData" / "Training" / "label" / f"label{n:04d}.nii.gz", _label_array(13, n),
                    origin=origin)
    _sitk_write(root / "RawData" / "Testing" / "img" / "img0061.nii.gz", _ct())
    return root


AMOS_LABELS = ["background", "spleen", "right kidney", "left kidney", "gall bladder", "esophagus", "liver",
               "stomach", "arota", "postcava", "pancreas", "right adrenal gland", "left adrenal gland", "duodenum",
               "bladder", "prostate/uterus"]


def make_amos(root: Path) -> Path:
    """amos22/: CT ids <= 500 and MRI ids > 500 in imagesTr and imagesVa, dataset.json with '0'..'15'."""
    base = root / "amos22"
    for images, labels, number in (("imagesTr", "labelsTr", 1), ("imagesTr", "labelsTr", 507),
                                   ("imagesVa", "labelsVa", 8), ("imagesVa", "labelsVa", 540)):
        image = _ct() if number <= 500 else _RNG.integers(0, 800, SHAPE).astype(np.int16)
        _nib_write(base / images / f"amos_{number:04d}.nii.gz", image)
        _nib_write(base / labels / f"amos_{number:04d}.nii.gz", _label_array(15, number))
    _nib_write(base / "imagesTs" / "amos_0002.nii.gz", _ct())
    (base / "dataset.json").write_text(json.dumps({
        "name": "AMOS", "licence": "CC-BY 4.0", "labels": {str(i): n for i, n in enumerate(AMOS_LABELS)},
        "training": [], "validation": [], "test": []}))
    return root


def make_kits(root: Path, cases=(0, 1, 2)) -> Path:
    """kits23/dataset/case_XXXXX/imaging.nii.gz + segmentation.nii.gz (+ instances/), kits23.json."""
    dataset = root / "kits23" / "dataset"
    for c in cases:
        _nib_write(dataset / f"case_{c:05d}" / "imaging.nii.gz", _ct().astype(np.float32))
        _nib_write(dataset / f"case_{c:05d}" / "segmentation.nii.gz", _label_array(3, c))
        _nib_write(dataset / f"case_{c:05d}" / "instances" / "kidney_instance-1_annotation-1.nii.gz",
                   np.zeros(SHAPE, np.uint8))
    (dataset / "kits23.json").write_text("[]")
    return root / "kits23"


def make_totalseg(root: Path, splits=("train", "val", "test")) -> Path:
    """Totalsegmentator_dataset_v201/: sNNNN/ct.nii.gz + segmentations/<117 classes>.nii.gz, meta.csv (';')."""
    base = root / "Totalsegmentator_dataset_v201"
    affine = np.array([[-1.5, 0, 0, 100.0], [0, -1.5, 0, 80.0], [0, 0, 1.5, -500.0], [0, 0, 0, 1]])
    rows = ["image_id;age;gender;institute;study_type;split"]
    for i, split in enumerate(splits):
        subject = base / f"s{i:04d}"
        _nib_write(subject / "ct.nii.gz", _ct(), affine)
        for k, name in enumerate(CLASSES):
            mask = np.zeros(SHAPE, np.uint8)
            mask.reshape(-1)[(k * 35 + i) % mask.size :: 4096] = 1  # a few voxels per class
            _nib_write(subject / "segmentations" / f"{name}.nii.gz", mask, affine)
        rows.append(f"s{i:04d};60;m;A;ct abdomen;{split}")
    (base / "meta.csv").write_text("\n".join(rows) + "\n")
    return base


def make_toothfairy(root: Path, cases=("ToothFairy2F_001", "ToothFairy2P_002")) -> Path:
    """Dataset112_ToothFairy2/: imagesTr/<case>_0000.mha, labelsTr/<case>.mha with FDI values, dataset.json."""
    base = root / "Dataset112_ToothFairy2"
    fdi = [0, 1, 2, 3, 7, 10, 11, 18, 21, 28, 31, 38, 41, 48]
    for k, case in enumerate(cases):
        label = np.array(fdi, dtype=np.uint8)[_label_array(len(fdi) - 1, k)]
        _sitk_write(base / "imagesTr" / f"{case}_0000.mha", _RNG.integers(0, 3000, SHAPE).astype(np.int16),
                    spacing=(0.3, 0.3, 0.3), origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
        _sitk_write(base / "labelsTr" / f"{case}.mha", label, spacing=(0.3, 0.3, 0.3), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    names = {"Background": 0, "Lower Jawbone": 1, "Upper Jawbone": 2, "Left Inferior Alveolar Canal": 3,
             "Right Inferior Alveolar Canal": 4, "Left Maxillary Sinus": 5, "Right Maxillary Sinus": 6,
             "Pharynx": 7, "Bridge": 8, "Crown": 9, "Implant": 10}
    for quadrant, q_name in ((1, "Upper Right"), (2, "Upper Left"), (3, "Lower Left"), (4, "Lower Right")):
        for pos in range(1, 9):
            names[f"{q_name} Tooth {pos}"] = quadrant * 10 + pos
    names["NA"] = 40  # the release lists "NA" for 19/20/29/30/39/40; JSON keeps the last
    (base / "dataset.json").write_text(json.dumps({
        "name": "ToothFairy 2", "license": "CC-BY-SA 4.0", "channel_names": {"0": "CBCT"}, "labels": names,
        "numTraining": 0, "file_ending": ".mha"}))
    return root


# ----------------------------------------------------------------------------------------------- checks


def check_structure(folder: Path, num_cases: int, num_channels: int = 1) -> dict:
    """dataset.json consistent with the files: counts, channels, consecutive labels, no hidden files."""
    data = json.loads((folder / "dataset.json").read_text())
    ending = data["file_ending"]
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    labels = sorted(p.name for p in (folder / "labelsTr").iterdir())
    assert not [n for n in images + labels if n.startswith(".")]
    assert data["numTraining"] == len(labels) == num_cases
    assert len(data["channel_names"]) == num_channels
    assert len(images) == num_cases * num_channels
    for label in labels:
        case = label[: -len(ending)]
        for c in range(num_channels):
            assert f"{case}_{c:04d}{ending}" in images
    values = set()
    for v in data["labels"].values():
        values |= {v} if isinstance(v, int) else set(v)  # regions (KiTS) list several values
    assert sorted(values) == list(range(len(values)))
    assert data["nnunet_progressive"]["task"] in TASKS
    assert not [p for p in folder.parent.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    return data


def check_integrity(folder: Path, capfd) -> None:
    """nnU-Net's verify_dataset_integrity passes and prints no error and no geometry mismatch warning."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    capfd.readouterr()
    verify_dataset_integrity(str(folder), num_processes=1)
    out = "\n".join(capfd.readouterr())
    assert "Error" not in out and "mismatch" not in out, out


# ----------------------------------------------------------------------------------------------- converters


def test_msd_4d_brain_tumour_with_macos_junk(tmp_path, capfd):
    labels = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
    source = make_msd(tmp_path / "downloads", "Task01_BrainTumour", 2, 4, labels, "BRATS")
    folder = convert("msd_brain_tumour", source, tmp_path / "raw", allow_partial=True, num_processes=1)
    assert folder.name == "Dataset901_BrainTumour"
    data = check_structure(folder, 2, num_channels=4)
    assert data["channel_names"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert sorted(p.name for p in (folder / "imagesTs").iterdir())[0] == "BRATS_900_0000.nii.gz"
    assert data["nnunet_progressive"]["partial"] is True
    assert (source / "imagesTr" / "BRATS_001.nii.gz").is_file()  # the source is never touched
    check_integrity(folder, capfd)


def test_msd_3d_renamed_folder_without_imagests(tmp_path):
    source = make_msd(tmp_path / "dl", "Task09_Spleen", 2, 1, {"0": "background", "1": "spleen"}, "spleen")
    renamed = tmp_path / "my_spleen_copy"
    source.rename(renamed)
    for f in (renamed / "imagesTs").iterdir():
        f.unlink()
    (renamed / "imagesTs").rmdir()
    folder = convert("msd_spleen", renamed, tmp_path / "raw", dataset_id=42, allow_partial=True, num_processes=1)
    assert folder.name == "Dataset042_Spleen"
    check_structure(folder, 2)


def test_btcv_label_geometry_is_aligned(tmp_path, capfd):
    folder = convert("btcv", make_btcv(tmp_path / "BTCV"), tmp_path / "raw", allow_partial=True, num_processes=1)
    data = check_structure(folder, 3)
    assert len(data["labels"]) == 14
    fixed = data["nnunet_progressive"]["label_geometry_fixed"]
    assert [f["case"] for f in fixed] == ["BTCV_0001"] and fixed[0]["origin_shift_mm"] == pytest.approx(0.5)
    check_integrity(folder, capfd)


def test_btcv_label_of_other_size_is_an_error(tmp_path):
    source = make_btcv(tmp_path / "BTCV", numbers=(1, 2))
    _sitk_write(source / "RawData" / "Training" / "label" / "label0002.nii.gz", np.zeros((8, 16, 16), np.uint8))
    with pytest.raises(SourceLayoutError, match="label0002.nii.gz has size"):
        convert("btcv", source, tmp_path / "raw", allow_partial=True, num_processes=1)
    assert not (tmp_path / "raw" / "Dataset911_BTCV").exists()
    assert not list((tmp_path / "raw").iterdir())  # the temporary folder is gone too


def test_amos_ct_only_by_default_and_ct_mri_setting(tmp_path, capfd):
    source = make_amos(tmp_path / "dl")
    ct = convert("amos22", source, tmp_path / "raw", allow_partial=True, num_processes=1)
    data = check_structure(ct, 2)
    assert sorted(p.name for p in (ct / "labelsTr").iterdir()) == ["amos_0001.nii.gz", "amos_0008.nii.gz"]
    assert data["channel_names"] == {"0": "CT"} and data["labels"]["prostate/uterus"] == 15
    assert data["overwrite_image_reader_writer"] == "NibabelIOWithReorient"
    assert data["nnunet_progressive"]["expected_cases"] == 300
    check_integrity(ct, capfd)

    both = convert("amos22", source, tmp_path / "raw", dataset_id=913, allow_partial=True, num_processes=1,
                   amos_modalities="ct_mri")
    data = check_structure(both, 4)
    assert both.name == "Dataset913_AMOS22_CTMRI" and data["channel_names"] == {"0": "either_CT_or_MR"}
    assert data["nnunet_progressive"]["mri_cases"] == 2 and data["nnunet_progressive"]["expected_cases"] == 360


def test_kits23_uses_nnunet_region_labels(tmp_path, capfd):
    folder = convert("kits23", make_kits(tmp_path), tmp_path / "raw", allow_partial=True, num_processes=1)
    assert folder.name == "Dataset913_KiTS2023"
    data = check_structure(folder, 3)
    assert data["labels"] == {"background": 0, "kidney": [1, 2, 3], "masses": [2, 3], "tumor": 2}
    assert data["regions_class_order"] == [1, 3, 2]
    check_integrity(folder, capfd)


def test_totalsegmentator_merges_class_masks(tmp_path, capfd):
    source = make_totalseg(tmp_path / "dl")
    folder = convert("totalsegmentator_v2", source, tmp_path / "raw", allow_partial=True, num_processes=1)
    data = check_structure(folder, 2)  # train + val subjects train, as the dataset authors' converter
    assert len(data["labels"]) == 118 and data["labels"]["costal_cartilages"] == 117
    label = nib.load(folder / "labelsTr" / "s0000.nii.gz")
    assert label.get_data_dtype() == np.uint8 and np.allclose(label.affine, nib.load(source / "s0000/ct.nii.gz").affine)
    assert set(np.unique(np.asanyarray(label.dataobj))) == set(range(118))
    check_integrity(folder, capfd)


def test_totalsegmentator_subset_and_splits(tmp_path):
    source = make_totalseg(tmp_path / "dl")
    folder = convert("totalsegmentator_v2", source, tmp_path / "raw", allow_partial=False, num_processes=2,
                     totalseg_classes="organs", totalseg_splits="train,val")  # meta.csv: 2 rows -> complete
    assert folder.name == "Dataset914_TotalSegmentatorV2_organs"  # train,val is the default: no suffix
    data = check_structure(folder, 2)
    assert list(data["labels"])[1:] == list(SUBSETS["organs"])
    values = np.unique(np.asanyarray(nib.load(folder / "labelsTr" / "s0001.nii.gz").dataobj))
    assert values.max() <= 24
    with pytest.raises(ProgressiveConfigError, match="unknown"):
        convert("totalsegmentator_v2", source, tmp_path / "raw2", totalseg_classes="liver,not_a_class")


def test_toothfairy2_fdi_labels_become_consecutive(tmp_path, capfd):
    folder = convert("toothfairy2", make_toothfairy(tmp_path / "dl"), tmp_path / "raw", allow_partial=True,
                     num_processes=1)
    data = check_structure(folder, 2)
    assert len(data["labels"]) == 43 and data["channel_names"] == {"0": "CBCT"}
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "ToothFairy2F_001.nii.gz")))
    assert sorted(np.unique(label)) == [0, 1, 2, 3, 7, 10, 11, 18, 19, 26, 27, 34, 35, 42]
    check_integrity(folder, capfd)


# ----------------------------------------------------------------------------------------------- errors


def test_wrong_case_count_names_expected_found_and_fix(tmp_path):
    with pytest.raises(CaseCountError) as info:
        convert("btcv", make_btcv(tmp_path / "BTCV"), tmp_path / "raw", num_processes=1)
    message = str(info.value)
    assert "expected 30" in message and "found 3" in message and "--allow-partial" in message
    assert not list((tmp_path / "raw").iterdir())


def test_missing_source_names_the_layout(tmp_path):
    with pytest.raises(SourceLayoutError) as info:
        convert("kits23", tmp_path / "nowhere", tmp_path / "raw")
    assert "case_00000/imaging.nii.gz" in str(info.value) and "github.com/neheller/kits23" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceLayoutError, match="RawData/Training/img/img0001.nii.gz"):
        convert("btcv", tmp_path / "empty", tmp_path / "raw")


def test_overwrite_refused_then_allowed_and_id_clash(tmp_path):
    source = make_kits(tmp_path, cases=(0, 1))
    folder = convert("kits23", source, tmp_path / "raw", allow_partial=True)
    (folder / "marker").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        convert("kits23", source, tmp_path / "raw", allow_partial=True)
    assert (folder / "marker").is_file()
    again = convert("kits23", source, tmp_path / "raw", allow_partial=True, overwrite=True)
    assert again == folder and not (folder / "marker").exists()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == [folder.name]  # no .tmp-/.trash- leftovers
    with pytest.raises(FileExistsError, match="already used"):
        convert("btcv", make_btcv(tmp_path / "BTCV"), tmp_path / "raw", dataset_id=913, allow_partial=True)


def test_unknown_task_and_setting(tmp_path):
    with pytest.raises(ProgressiveConfigError, match="valid keys"):
        convert("msd_nope", tmp_path, tmp_path / "raw")
    with pytest.raises(ProgressiveConfigError, match="unknown setting"):
        convert("btcv", tmp_path, tmp_path / "raw", amos_modalities="ct")
    with pytest.raises(ProgressiveConfigError, match="not one of"):
        convert("amos22", tmp_path, tmp_path / "raw", amos_modalities="mri")


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_list_and_convert(tmp_path, capsys, monkeypatch):
    assert main(["convert", "--list"]) == 0
    out = capsys.readouterr().out
    for task in TASKS.values():
        assert task.key in out and str(task.default_id) in out
    source = make_kits(tmp_path, cases=(0, 1))
    assert main(["convert", "kits23", "--source", str(source), "--raw-root", str(tmp_path / "raw")]) == 2
    assert "--allow-partial" in capsys.readouterr().err
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "env_raw"))
    assert main(["convert", "kits23", "--source", str(source), "--allow-partial", "-np", "1"]) == 0
    assert (tmp_path / "env_raw" / "Dataset913_KiTS2023" / "dataset.json").is_file()
    assert "nnUNetv2_plan_and_preprocess -d 913" in capsys.readouterr().out
    assert main(["convert", "kits23", "--source", str(source), "--amos-modalities", "ct"]) == 2
    assert "--amos-modalities" in capsys.readouterr().err


def test_totalsegmentator_default_is_the_official_split(tmp_path):
    """train + val train (imagesTr), test goes to imagesTs/labelsTs, the authors' fold 0 is written beside."""
    source = make_totalseg(tmp_path / "dl", splits=("train", "val", "test", "train"))
    folder = convert("totalsegmentator_v2", source, tmp_path / "raw", num_processes=1, totalseg_classes="organs")
    data = check_structure(folder, 3)
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["s0000.nii.gz", "s0001.nii.gz", "s0003.nii.gz"]
    assert [p.name for p in (folder / "imagesTs").iterdir()] == ["s0002_0000.nii.gz"]
    assert [p.name for p in (folder / "labelsTs").iterdir()] == ["s0002.nii.gz"]
    assert json.loads((folder / "splits_final_official.json").read_text()) == [
        {"train": ["s0000", "s0003"], "val": ["s0001"]}]
    notes = data["nnunet_progressive"]
    assert notes["test_cases"] == 1 and notes["splits"] == ["train", "val"] and notes["expected_cases"] == 3
    pooled = convert("totalsegmentator_v2", source, tmp_path / "raw", dataset_id=920, num_processes=1,
                     totalseg_classes="organs", totalseg_splits="all", allow_partial=True)
    assert pooled.name == "Dataset920_TotalSegmentatorV2_organs_TrainValTest"
    check_structure(pooled, 4)
    assert not (pooled / "imagesTs").exists() and not (pooled / "splits_final_official.json").exists()


@pytest.mark.parametrize("change, message", [
    ({"direction": (1, 0, 0, 0, -1, 0, 0, 0, 1)}, r"BTCV_0002: label label0002.nii.gz .*direction .*flipped"),
    ({"origin": (-100.0, -120.0, -295.0)}, r"BTCV_0002: .*2.00 voxels from the image's"),
    ({"spacing": (0.8, 0.8, 3.0)}, r"BTCV_0002: .*spacing \(0.8, 0.8, 3.0\) differs"),
])
def test_btcv_refuses_label_geometry_beyond_rounding(tmp_path, change, message):
    source = make_btcv(tmp_path / "BTCV", numbers=(1, 2))
    _sitk_write(source / "RawData" / "Training" / "label" / "label0002.nii.gz", _label_array(13, 2), **change)
    with pytest.raises(SourceLayoutError, match=message):
        convert("btcv", source, tmp_path / "raw", allow_partial=True, num_processes=1)
    assert not list((tmp_path / "raw").iterdir())


def test_amos_modality_from_the_release_metadata_csv(tmp_path):
    source = make_amos(tmp_path / "dl")
    header = "amos_id,Patient's Sex,Manufacturer's Model Name,Modality"
    rows = ["1,M,Aquilion ONE,CT", "8,F,Optima CT660,CT", "507,F,Ingenia,CT", "540,M,Prisma,MRI"]  # 507: CSV says CT
    (source / "amos22" / "labeled_data_meta_0000_0599.csv").write_text("\n".join([header, *rows]) + "\n")
    ct = convert("amos22", source, tmp_path / "raw", allow_partial=True, num_processes=1)
    notes = check_structure(ct, 3)["nnunet_progressive"]
    assert sorted(p.name for p in (ct / "labelsTr").iterdir()) == ["amos_0001.nii.gz", "amos_0008.nii.gz",
                                                                    "amos_0507.nii.gz"]
    assert notes["modality_from"].startswith("labeled_data_meta_0000_0599.csv")
    assert notes["modality_csv_differs_from_id_rule"] == ["amos_0507.nii.gz"] and notes["modality_by_id_rule"] == []
    # a CSV without a modality column: the id rule decides, and the notes say so
    (source / "amos22" / "labeled_data_meta_0000_0599.csv").write_text("amos_id,Site\n1,A\n8,B\n507,C\n540,D\n")
    by_rule = convert("amos22", source, tmp_path / "raw", dataset_id=920, allow_partial=True, num_processes=1)
    notes = check_structure(by_rule, 2)["nnunet_progressive"]
    assert notes["modality_from"].startswith("id rule (ids <= 500 are CT); ") and "no modality column" in \
        notes["modality_from"]
