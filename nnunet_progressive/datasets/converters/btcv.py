"""BTCV (Synapse multi-organ abdominal CT): 30 labelled cases, 13 organs.

nnU-Net ships no BTCV converter. Images are copied unchanged (``imgNNNN`` -> ``BTCV_NNNN_0000``); labels are
rewritten as uint8 on the image's grid (SimpleITK). Some BTCV labels carry slightly different header numbers than
their images although both share the voxel grid: differences within rounding (an origin shift below half a
voxel, directions and spacings equal to 1e-3) are corrected by writing the image's geometry, and every correction
is listed in dataset.json (``nnunet_progressive.label_geometry_fixed``). A label of another size, or one whose
geometry differs by more (a flipped axis, a shift of a voxel or more), is refused with an error naming the case:
copying the image's geometry onto it would silently move the annotation.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nnunet_progressive.datasets.converters._common import (
    Built,
    ConvertOptions,
    case_number,
    check_case_count,
    files_with_suffix,
    first_existing,
    label_onto_image_grid,
    layout_error,
    run_cases,
)
from nnunet_progressive.datasets.converters.tasks import TaskInfo

# Label values of the BTCV abdomen challenge (1..13).
LABELS: tuple[str, ...] = (
    "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
    "inferior vena cava", "portal vein and splenic vein", "pancreas", "right adrenal gland", "left adrenal gland",
)


def _locate(task: TaskInfo, source: Path) -> Path:
    """The ``Training`` folder under ``source``, ``source/RawData`` or ``source/Abdomen/RawData``."""
    candidates = [source / "Training", source / "RawData" / "Training", source / "Abdomen" / "RawData" / "Training"]
    found = first_existing(candidates, lambda p: (p / "img").is_dir() and (p / "label").is_dir())
    if found is None:
        raise layout_error(task, source, f"no Training/img/ and Training/label/ under {source} (looked in "
                                         f"{', '.join(str(c) for c in candidates)}).")
    return found


def _convert_case(image: Path, label: Path, out_image: Path, out_label: Path, case: str) -> dict[str, Any] | None:
    shutil.copyfile(image, out_image)
    return label_onto_image_grid(image, label, out_label, len(LABELS), case)


def build(task: TaskInfo, source: Path, work: Path, dataset_id: int, options: ConvertOptions) -> Built:
    """Check ``RawData/Training``, then copy images and write geometry-aligned labels into ``work``."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    training = _locate(task, source)
    images = {case_number(n, r"img(\d+)\.nii\.gz"): n for n in files_with_suffix(training / "img", ".nii.gz")}
    labels = {case_number(n, r"label(\d+)\.nii\.gz"): n for n in files_with_suffix(training / "label", ".nii.gz")}
    images.pop(None, None)
    labels.pop(None, None)
    unpaired = sorted(set(images) ^ set(labels))
    if unpaired:
        raise layout_error(task, source, f"cases {unpaired[:5]} have an image without label or a label without "
                                         f"image in {training}; re-extract RawData.zip or remove them.")
    check_case_count(task, len(images), task.expected_cases, options.allow_partial, training)

    folder = work / f"Dataset{dataset_id:03d}_{task.dataset_name}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    jobs = []
    for number in sorted(images):
        case = f"BTCV_{number:04d}"
        jobs.append((training / "img" / images[number], training / "label" / labels[number],
                     folder / "imagesTr" / f"{case}_0000.nii.gz", folder / "labelsTr" / f"{case}.nii.gz", case))
    fixes = [f for f in run_cases(_convert_case, jobs, options.num_processes, "BTCV") if f is not None]

    generate_dataset_json(
        str(folder), {0: "CT"}, {"background": 0, **{name: i for i, name in enumerate(LABELS, start=1)}},
        len(jobs), ".nii.gz", dataset_name=task.dataset_name, reference=task.download_url,
        license=task.licence, converted_by="nnunet_progressive.datasets.converters.btcv",
        description="BTCV abdomen training cases (RawData/Training); labels aligned to image geometry.")
    return Built(folder, {"label_geometry_fixed": fixes})
