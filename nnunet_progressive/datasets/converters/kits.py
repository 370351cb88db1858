"""KiTS23 (kidney 1, tumour 2, cyst 3), through nnU-Net's own ``convert_kits2023``.

nnU-Net's converter copies ``case_XXXXX/imaging.nii.gz`` and ``segmentation.nii.gz`` unchanged and writes a
region-based dataset.json: kidney = {1, 2, 3}, masses = {2, 3}, tumour = {2}, ``regions_class_order``
(1, 3, 2), reader ``NibabelIOWithReorient``. That is KiTS23's own evaluation hierarchy, so it is kept.
We check the case folders first (``kits23_download_data`` leaves cases without ``imaging.nii.gz`` when
interrupted) and redirect its output into our temporary folder.
"""

from __future__ import annotations

from pathlib import Path

from nnunet_progressive.datasets.converters._common import (
    Built,
    ConvertOptions,
    check_case_count,
    first_existing,
    layout_error,
    nnunet_raw_redirected,
    visible,
)
from nnunet_progressive.datasets.converters.tasks import TaskInfo

_FILES = ("imaging.nii.gz", "segmentation.nii.gz")


def _case_dirs(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return visible([p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("case_")])


def build(task: TaskInfo, source: Path, work: Path, dataset_id: int, options: ConvertOptions) -> Built:
    """Check the ``case_*`` folders, then run nnU-Net's ``convert_kits2023`` into ``work``."""
    from nnunetv2.dataset_conversion import Dataset220_KiTS2023 as kits

    root = first_existing([source, source / "dataset"], lambda p: bool(_case_dirs(p)))
    if root is None:
        raise layout_error(task, source, f"no case_XXXXX/ folders in {source} or {source / 'dataset'}.")
    cases = _case_dirs(root)
    incomplete = [c for c in cases if not all((root / c / f).is_file() for f in _FILES)]
    if incomplete:
        raise layout_error(task, source, f"{len(incomplete)} case folder(s) lack imaging.nii.gz or "
                                         f"segmentation.nii.gz, e.g. {incomplete[:3]}. Run kits23_download_data "
                                         f"again to finish the download, or remove those folders and pass "
                                         f"--allow-partial.")
    check_case_count(task, len(cases), task.expected_cases, options.allow_partial, root)

    out = work / "out"
    out.mkdir()
    print(f"{task.display_name}: copying {len(cases)} cases through nnU-Net's convert_kits2023 (no progress "
          f"bar) ...", flush=True)
    with nnunet_raw_redirected(kits, out):
        kits.convert_kits2023(str(root), dataset_id)
    return Built(out / f"Dataset{dataset_id:03d}_KiTS2023")
