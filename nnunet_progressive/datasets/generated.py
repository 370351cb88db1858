"""Every dataset the package can make without a download: the synthetic presets and the MNI152 tissue set.

One registry, used by the benchmark spec (``prepare: {synthetic_preset: NAME}``) and its runner.
"""
from __future__ import annotations

from pathlib import Path

MNI152 = "mni152"


def generated_dataset_names() -> list[str]:
    """The names ``prepare.synthetic_preset`` accepts."""
    from nnunet_progressive.datasets.synthetic import PRESETS

    return sorted([*PRESETS, MNI152])


def generated_task_name(name: str) -> str:
    """The ``Name`` part of ``DatasetXXX_Name`` that ``name`` writes."""
    if name == MNI152:
        from nnunet_progressive.datasets.mni152 import DATASET_NAME

        return DATASET_NAME
    from nnunet_progressive.datasets.synthetic import PRESETS

    return PRESETS[name].name


def write_generated(name: str, raw_root: str | Path, dataset_id: int, overwrite: bool = False) -> Path:
    """Write the generated dataset ``name`` under ``raw_root`` with ``dataset_id``; returns its folder."""
    if name == MNI152:
        from nnunet_progressive.datasets.mni152 import write_mni152_dataset

        return write_mni152_dataset(raw_root, dataset_id, overwrite=overwrite)
    from nnunet_progressive.datasets.synthetic import write_preset

    return write_preset(name, raw_root, dataset_id, overwrite=overwrite)
