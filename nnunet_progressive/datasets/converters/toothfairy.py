"""ToothFairy2 (maxillofacial CBCT), through nnU-Net's ``Dataset119_ToothFairy2_All`` building blocks.

The release (``Dataset112_ToothFairy2``) is already nnU-Net-like but keeps FDI tooth numbers as label values
(1-48, with unused 19/20/29/30/39/40), which nnU-Net rejects (labels must be consecutive). nnU-Net's
``mapping_DS119`` maps the 42 used values to 1..42; we apply it with nnU-Net's ``label_mapping`` and convert
the images with its ``image_to_nifi`` (.mha -> .nii.gz), one case at a time with a progress bar. Values
outside the mapping become background, as in nnU-Net's script. Its 70:30 ``splits_final.json`` is not
written: the benchmark uses nnU-Net's default 5-fold cross-validation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nnunet_progressive.datasets.converters._common import (
    Built,
    ConvertOptions,
    check_case_count,
    files_with_suffix,
    first_existing,
    layout_error,
    run_cases,
)
from nnunet_progressive.datasets.converters.tasks import TaskInfo

_RELEASE_FOLDER = "Dataset112_ToothFairy2"


def _locate(task: TaskInfo, source: Path) -> Path:
    found = first_existing([source, source / _RELEASE_FOLDER],
                           lambda p: (p / "imagesTr").is_dir() and (p / "labelsTr").is_dir())
    if found is None:
        raise layout_error(task, source, f"no imagesTr/ and labelsTr/ in {source} or {source / _RELEASE_FOLDER}.")
    if not (found / "dataset.json").is_file():
        raise layout_error(task, source, f"dataset.json (label names) is missing in {found}.")
    return found


def _convert_case(image: Path, label: Path, out_image: Path, out_label: Path, mapping: dict[int, int]) -> None:
    from nnunetv2.dataset_conversion import Dataset119_ToothFairy2_All as tf2

    tf2.image_to_nifi(str(image), str(out_image))
    tf2.label_mapping(str(label), str(out_label), mapping)


def _new_dataset_json(task: TaskInfo, source: Path, original: dict[str, Any], mapping: dict[int, int],
                      num_cases: int, name: str) -> dict[str, Any]:
    """The release's dataset.json with consecutive labels, .nii.gz ending and channel_names (as nnU-Net's script)."""
    named = original.get("labels", {})
    if named and all(str(k).isdigit() for k in named):  # MSD-style {"1": "Lower Jawbone", ...}
        named = {str(v): int(k) for k, v in named.items()}
    labels = {"background": 0}
    for label_name, value in named.items():
        if isinstance(value, int) and value in mapping:
            labels[label_name] = mapping[value]
    if sorted(labels.values()) != list(range(len(mapping) + 1)):
        missing = sorted(set(mapping) - {v for v in named.values() if isinstance(v, int)})
        raise layout_error(task, source, f"dataset.json does not name every label value 1-18, 21-28, 31-38, "
                                         f"41-48; missing values {missing[:10]}.")
    data = {k: v for k, v in original.items() if k not in ("training", "test", "modality")}
    data["channel_names"] = original.get("channel_names") or original.get("modality") or {"0": "CBCT"}
    data.update(labels=labels, numTraining=num_cases, file_ending=".nii.gz", name=name)
    return data


def build(task: TaskInfo, source: Path, work: Path, dataset_id: int, options: ConvertOptions) -> Built:
    """Check the release folder, then write remapped labels and NIfTI images into ``work``."""
    from nnunetv2.dataset_conversion.Dataset119_ToothFairy2_All import mapping_DS119

    root = _locate(task, source)
    labels = files_with_suffix(root / "labelsTr", ".mha")
    cases = [n[: -len(".mha")] for n in labels]
    no_image = [c for c in cases if not (root / "imagesTr" / f"{c}_0000.mha").is_file()]
    if no_image:
        raise layout_error(task, source, f"{len(no_image)} label(s) have no imagesTr/<case>_0000.mha, e.g. "
                                         f"{no_image[:3]}.")
    check_case_count(task, len(cases), task.expected_cases, options.allow_partial, root / "labelsTr")
    mapping = mapping_DS119()
    original = json.loads((root / "dataset.json").read_text())

    folder = work / f"Dataset{dataset_id:03d}_{task.dataset_name}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    dataset_json = _new_dataset_json(task, source, original, mapping, len(cases), folder.name)
    jobs = [(root / "imagesTr" / f"{c}_0000.mha", root / "labelsTr" / f"{c}.mha",
             folder / "imagesTr" / f"{c}_0000.nii.gz", folder / "labelsTr" / f"{c}.nii.gz", mapping) for c in cases]
    run_cases(_convert_case, jobs, options.num_processes, "ToothFairy2")
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2) + "\n")
    return Built(folder, {"label_mapping": {str(k): v for k, v in mapping.items()}})
