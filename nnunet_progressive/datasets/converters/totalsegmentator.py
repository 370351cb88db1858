"""TotalSegmentator v2.0.1 (1228 CT subjects, 117 classes as one binary mask file per class).

Splits as the dataset authors' own converter (``resources/convert_dataset_to_nnunet.py`` of
github.com/wasserth/TotalSegmentator): the subjects of meta.csv's ``train`` and ``val`` splits go to
imagesTr/labelsTr, the ``test`` subjects to imagesTs/labelsTs (nnU-Net never trains on them; predict and evaluate
them after training). The authors train one fold whose validation cases are the ``val`` split: that split is
written as ``splits_final_official.json`` beside dataset.json (copy it to
``nnUNet_preprocessed/DatasetXXX/splits_final.json`` after planning to train their fold 0; without it nnU-Net
makes its 5-fold split of train+val). ``--totalseg-splits`` changes which splits train ('all' pools the test
subjects in too).

nnU-Net ships a converter for the MRI variant only (``Dataset227_TotalSegmentatorMRI``, a script body); this
one follows it: CT copied unchanged, the chosen classes' masks merged into one uint8 label map (nibabel; a
voxel claimed by two masks gets the later class), reader ``NibabelIOWithReorient``. The label map is written
with the CT's affine and header, so image and label agree exactly. Label ids follow TotalSegmentator's own v2
class order (``class_map["total"]``), renumbered 1..k for subsets.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.datasets.converters._common import (
    Built,
    ConvertOptions,
    SourceLayoutError,
    check_case_count,
    first_existing,
    layout_error,
    run_cases,
    visible,
)
from nnunet_progressive.datasets.converters.tasks import TaskInfo

# TotalSegmentator v2 classes in label-id order (id = index + 1), as in TotalSegmentator's map_to_binary.py.
CLASSES: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland_right",
    "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
    "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea", "thyroid_gland", "small_bowel",
    "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst_left", "kidney_cyst_right",
    "sacrum", "vertebrae_S1", "vertebrae_L5", "vertebrae_L4", "vertebrae_L3", "vertebrae_L2", "vertebrae_L1",
    *(f"vertebrae_T{i}" for i in range(12, 0, -1)), *(f"vertebrae_C{i}" for i in range(7, 0, -1)),
    "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
    "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
    "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left", "superior_vena_cava",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left", "iliac_artery_right",
    "iliac_vena_left", "iliac_vena_right",
    "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right",
    "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left",
    "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left",
    "gluteus_minimus_right", "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain",
    "skull",
    *(f"rib_left_{i}" for i in range(1, 13)), *(f"rib_right_{i}" for i in range(1, 13)), "sternum",
    "costal_cartilages",
)
# TotalSegmentator's five training parts (class_map_5_parts) are contiguous id ranges of CLASSES.
SUBSETS: dict[str, tuple[str, ...]] = {
    "all": CLASSES,
    "organs": CLASSES[0:24],
    "vertebrae": CLASSES[24:50],
    "cardiac": CLASSES[50:68],
    "muscles": CLASSES[68:91],
    "ribs": CLASSES[91:117],
}
SPLITS = ("train", "val", "test")
DEFAULT_TRAINING_SPLITS = ("train", "val")  # as the dataset authors' converter; test -> imagesTs/labelsTs
OFFICIAL_SPLITS_FILE = "splits_final_official.json"
_SUBJECT = re.compile(r"s\d{4,}")


def resolve_classes(value: str) -> tuple[str, ...]:
    """Class names for a subset name or a comma-separated list (kept in v2 label order)."""
    if value in SUBSETS:
        return SUBSETS[value]
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in CLASSES]
    if not names or unknown:
        raise ProgressiveConfigError(f"totalseg_classes={value!r}: expected one of {list(SUBSETS)} or a comma-"
                                     f"separated list of TotalSegmentator v2 class names; unknown: {unknown[:10]}.")
    chosen = set(names)
    return tuple(c for c in CLASSES if c in chosen)


def resolve_splits(value: str) -> tuple[str, ...]:
    """Split names for ``'all'`` or a comma-separated list of train/val/test."""
    if value == "all":
        return SPLITS
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names or any(n not in SPLITS for n in names):
        raise ProgressiveConfigError(f"totalseg_splits={value!r}: expected 'all' or a comma-separated list of "
                                     f"{list(SPLITS)}.")
    return names


def dataset_name(task: TaskInfo, settings: dict[str, str]) -> str:
    classes, splits = settings["totalseg_classes"], resolve_splits(settings["totalseg_splits"])
    resolve_classes(classes)
    name = task.dataset_name
    if classes != "all":
        name += f"_{classes}" if classes in SUBSETS else f"_{len(resolve_classes(classes))}classes"
    if set(splits) != set(DEFAULT_TRAINING_SPLITS):
        name += "_" + "".join(s.capitalize() for s in SPLITS if s in splits)
    return name


def _read_splits(task: TaskInfo, source: Path, meta: Path) -> dict[str, str]:
    """``{image_id: split}`` from meta.csv (';' or ',' separated)."""
    if not meta.is_file():
        raise layout_error(task, source, f"{meta} is missing; it is needed to select splits (or use "
                                         f"--totalseg-splits all).")
    text = meta.read_text()
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=";,")
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows or "image_id" not in rows[0] or "split" not in rows[0]:
        raise layout_error(task, source, f"{meta} has no image_id and split columns.")
    return {row["image_id"].strip(): row["split"].strip() for row in rows}


def _convert_subject(ct: Path, masks: Path, classes: tuple[str, ...], out_image: Path, out_label: Path) -> None:
    import nibabel as nib
    import numpy as np

    image = nib.load(ct)
    label = np.zeros(image.shape, dtype=np.uint8)
    for value, name in enumerate(classes, start=1):
        path = masks / f"{name}.nii.gz"
        if not path.is_file():
            raise SourceLayoutError(f"{masks.parent.name}: mask {path.name} is missing in {masks}; re-extract the "
                                    f"subject from the official zip or remove it (then use --allow-partial).")
        mask = nib.load(path)
        if mask.shape != image.shape:
            raise SourceLayoutError(f"{masks.parent.name}: mask {path.name} has shape {mask.shape}, CT has "
                                    f"{image.shape}.")
        label[np.asanyarray(mask.dataobj) > 0] = value
    out = nib.Nifti1Image(label, image.affine, header=image.header)
    out.header.set_data_dtype(np.uint8)
    out.header.set_slope_inter(1.0, 0.0)
    nib.save(out, out_label)
    shutil.copyfile(ct, out_image)


def build(task: TaskInfo, source: Path, work: Path, dataset_id: int, options: ConvertOptions) -> Built:
    """Select subjects (by split) and classes, merge each subject's masks into one label map in ``work``: the
    training splits into imagesTr/labelsTr, the test split (unless it trains) into imagesTs/labelsTs."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    classes = resolve_classes(options.settings["totalseg_classes"])
    splits = resolve_splits(options.settings["totalseg_splits"])

    def subjects_in(folder: Path) -> list[str]:
        if not folder.is_dir():
            return []
        return visible([p.name for p in folder.iterdir() if p.is_dir() and _SUBJECT.fullmatch(p.name)])

    root = first_existing([source, source / "Totalsegmentator_dataset_v201"], lambda p: bool(subjects_in(p)))
    if root is None:
        raise layout_error(task, source, f"no subject folders (s0000/ ...) in {source}.")
    subjects = subjects_in(root)
    expected = task.expected_cases
    test_subjects: list[str] = []
    split_of: dict[str, str] = {}
    if set(splits) != set(SPLITS):
        split_of = _read_splits(task, source, root / "meta.csv")
        expected = sum(1 for s in split_of.values() if s in splits)
        test_subjects = [s for s in subjects if split_of.get(s) == "test"] if "test" not in splits else []
        subjects = [s for s in subjects if split_of.get(s) in splits]
    incomplete = [s for s in subjects + test_subjects
                  if not ((root / s / "ct.nii.gz").is_file() and (root / s / "segmentations").is_dir())]
    if incomplete:
        raise layout_error(task, source, f"{len(incomplete)} subject(s) lack ct.nii.gz or segmentations/, e.g. "
                                         f"{incomplete[:3]}; re-extract them or remove them and pass --allow-partial.")
    check_case_count(task, len(subjects), expected, options.allow_partial, root)

    name = dataset_name(task, options.settings)
    folder = work / f"Dataset{dataset_id:03d}_{name}"
    for sub in ("imagesTr", "labelsTr", *(("imagesTs", "labelsTs") if test_subjects else ())):
        (folder / sub).mkdir(parents=True)
    jobs = [(root / s / "ct.nii.gz", root / s / "segmentations", classes, folder / "imagesTr" / f"{s}_0000.nii.gz",
             folder / "labelsTr" / f"{s}.nii.gz") for s in subjects]
    jobs += [(root / s / "ct.nii.gz", root / s / "segmentations", classes, folder / "imagesTs" / f"{s}_0000.nii.gz",
              folder / "labelsTs" / f"{s}.nii.gz") for s in test_subjects]
    run_cases(_convert_subject, jobs, options.num_processes, "TotalSegmentator")
    official = None
    if set(splits) == set(DEFAULT_TRAINING_SPLITS):
        official = [{"train": [s for s in subjects if split_of.get(s) == "train"],
                     "val": [s for s in subjects if split_of.get(s) == "val"]}]
        (folder / OFFICIAL_SPLITS_FILE).write_text(json.dumps(official, indent=2) + "\n")
    generate_dataset_json(
        str(folder), {0: "CT"}, {"background": 0, **{c: i for i, c in enumerate(classes, start=1)}}, len(subjects),
        ".nii.gz", dataset_name=name, reference="https://github.com/wasserth/TotalSegmentator",
        release=task.download_url, overwrite_image_reader_writer="NibabelIOWithReorient", license=task.licence,
        converted_by="nnunet_progressive.datasets.converters.totalsegmentator",
        description=f"TotalSegmentator v2.0.1, {len(classes)} classes; training splits {list(splits)}"
                    + (f", test split in imagesTs/labelsTs ({len(test_subjects)} subjects)" if test_subjects else "")
                    + ".")
    notes: dict[str, Any] = {"expected_cases": expected, "classes": len(classes), "splits": list(splits),
                             "test_cases": len(test_subjects)}
    if official is not None:
        notes["official_splits_file"] = OFFICIAL_SPLITS_FILE
    return Built(folder, notes)
