"""nnU-Net's dataset folder names (``DatasetXXX_Name``: three-digit id, then the task name) and dataset.json's
label conventions."""
from __future__ import annotations

import re
from collections.abc import Mapping

from nnunet_progressive.core.errors import ProgressiveConfigError

DATASET_NAME = re.compile(r"^Dataset(\d{3})_([A-Za-z0-9_.-]+)$")


def is_dataset_name(text: str) -> bool:
    return DATASET_NAME.match(str(text)) is not None


def dataset_id(name: str) -> int:
    """``Dataset004_Hippocampus`` -> 4; a clear error for anything else."""
    match = DATASET_NAME.match(str(name))
    if match is None:
        raise ProgressiveConfigError(f"{name!r} is not an nnU-Net dataset folder name; expected DatasetXXX_Name, "
                                     f"e.g. Dataset004_Hippocampus")
    return int(match.group(1))


def dataset_name(identifier: int, task: str) -> str:
    """(4, "Hippocampus") -> ``Dataset004_Hippocampus``."""
    if not 0 <= int(identifier) <= 999:
        raise ProgressiveConfigError(f"dataset id {identifier} is outside nnU-Net's range 0-999")
    name = f"Dataset{int(identifier):03d}_{task}"
    dataset_id(name)
    return name


def parse_dataset_argument(text: str | int) -> int | str:
    """A ``-d`` argument as nnU-Net reads it: an id (``4``, ``004``) or a ``DatasetXXX_Name``."""
    text = str(text).strip()
    if text.isdigit():
        return int(text)
    if is_dataset_name(text):
        return text
    raise ProgressiveConfigError(f"dataset {text!r}: expected an id such as 4 or a folder name such as "
                                 f"Dataset004_Hippocampus")


def background_label_values(dataset_json: Mapping) -> set[int]:
    """The label values of a raw dataset that are no foreground: background 0 and dataset.json's ignore label."""
    ignore = dataset_json.get("labels", {}).get("ignore")
    return {0} | ({int(ignore)} if isinstance(ignore, int | float) else set())
