"""Medical Segmentation Decathlon tasks 01-10, through nnU-Net's own ``convert_msd_dataset``.

nnU-Net's converter splits 4D images (BrainTumour, Prostate) into one file per channel, copies 3D images as
``_0000``, skips hidden files (the ``._*`` files of macOS-made tarballs) and rewrites dataset.json. We call it
on a symlinked view of the source named ``TaskXX_Name`` (so a renamed download folder still works, and a
missing ``imagesTs/`` becomes an empty one), with its output redirected into our temporary folder.
"""

from __future__ import annotations

from pathlib import Path

from nnunet_progressive.datasets.converters._common import (
    Built,
    ConvertOptions,
    check_case_count,
    files_with_suffix,
    first_existing,
    layout_error,
    nnunet_raw_redirected,
)
from nnunet_progressive.datasets.converters.tasks import TaskInfo

_ENDING = ".nii.gz"


def _locate(task: TaskInfo, source: Path) -> Path:
    """The task folder: ``source`` itself or ``source/TaskXX_Name``."""
    found = first_existing([source, source / task.source_name],
                           lambda p: (p / "dataset.json").is_file() and (p / "imagesTr").is_dir())
    if found is None:
        raise layout_error(task, source, f"no dataset.json and imagesTr/ in {source} or {source / task.source_name}.")
    if not (found / "labelsTr").is_dir():
        raise layout_error(task, source, f"labelsTr/ is missing in {found}.")
    return found


def build(task: TaskInfo, source: Path, work: Path, dataset_id: int, options: ConvertOptions) -> Built:
    """Check the MSD folder, then run nnU-Net's ``convert_msd_dataset`` into ``work``."""
    from nnunetv2.dataset_conversion import convert_MSD_dataset as msd

    folder = _locate(task, source)
    images = files_with_suffix(folder / "imagesTr", _ENDING)
    labels = set(files_with_suffix(folder / "labelsTr", _ENDING))
    unpaired = sorted(set(images) ^ labels)
    if unpaired:
        raise layout_error(task, source, f"{len(unpaired)} file(s) in imagesTr/ or labelsTr/ have no partner of the "
                                         f"same name in the other folder, e.g. {unpaired[:3]}; re-extract the "
                                         f"archive or remove them.")
    check_case_count(task, len(images), task.expected_cases, options.allow_partial, folder / "imagesTr")

    view = work / "source" / task.source_name
    view.mkdir(parents=True)
    for name in ("imagesTr", "labelsTr", "dataset.json"):
        (view / name).symlink_to(folder / name)
    if (folder / "imagesTs").is_dir():
        (view / "imagesTs").symlink_to(folder / "imagesTs")
    else:
        (view / "imagesTs").mkdir()

    out = work / "out"
    out.mkdir()
    num_test = len(files_with_suffix(folder / "imagesTs", _ENDING))
    print(f"{task.display_name}: {len(images)} training and {num_test} test cases through nnU-Net's "
          f"convert_msd_dataset ({options.num_processes} processes, no progress bar) ...", flush=True)
    # nnU-Net's id check looks at the user's $nnUNet_* folders; we check raw_root ourselves before building.
    with nnunet_raw_redirected(msd, out, find_candidate_datasets=lambda *_args, **_kwargs: []):
        msd.convert_msd_dataset(str(view), overwrite_target_id=dataset_id, num_processes=options.num_processes)
    name = task.source_name.split("_", 1)[1]
    return Built(out / f"Dataset{dataset_id:03d}_{name}", {"test_images": num_test})
