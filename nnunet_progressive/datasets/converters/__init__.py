"""Convert the 15 datasets of the PGPS benchmark from their official download layout to nnU-Net v2 raw format.

Users download every dataset themselves (nothing is fetched at run time) and pass its folder::

    from nnunet_progressive.datasets.converters import TASKS, convert
    folder = convert("btcv", "/data/downloads/BTCV", "/data/nnUNet_raw")
    # -> /data/nnUNet_raw/Dataset911_BTCV; then: nnUNetv2_plan_and_preprocess -d 911 --verify_dataset_integrity

``TASKS`` (see :mod:`.tasks`) lists each task's default id, expected case count, download page, licence and
the subset choices the paper left open. nnU-Net's own converters are called where they exist (MSD, KiTS23,
ToothFairy2's label mapping); see ``docs/datasets.md`` for every task's choices.

The dataset is built in a hidden sibling folder of the target (``.tmp-...``, which nnU-Net's ``DatasetXXX``
lookup ignores) and renamed into place, so a failed conversion never leaves a half-written dataset.
"""

from __future__ import annotations

import importlib
import os
import shutil
from numbers import Integral
from pathlib import Path
from typing import Any

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.io import claim_raw_dataset_folder, move_folder_into_place, temporary_sibling
from nnunet_progressive.datasets.converters._common import (
    CaseCountError,
    ConvertOptions,
    SourceLayoutError,
    finalize_dataset_json,
    layout_error,
)
from nnunet_progressive.datasets.converters.tasks import TASKS, TaskInfo, TaskSetting

__all__ = ["TASKS", "CaseCountError", "SourceLayoutError", "TaskInfo", "TaskSetting", "convert",
           "resolve_settings", "target_folder_name"]


def _task(task_key: str) -> TaskInfo:
    if task_key not in TASKS:
        raise ProgressiveConfigError(f"Unknown benchmark task {task_key!r}; valid keys: {sorted(TASKS)} "
                                     f"(CLI: nnprog convert --list).")
    return TASKS[task_key]


def resolve_settings(task_key: str, settings: dict[str, Any] | None = None) -> dict[str, str]:
    """The task's settings with defaults filled in; raises ``ProgressiveConfigError`` for unknown names or values."""
    task = _task(task_key)
    given = dict(settings or {})
    known = {s.name: s for s in task.settings}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = sorted(known) or "none"
        raise ProgressiveConfigError(f"{task.key}: unknown setting(s) {unknown}; this task's settings: {valid}.")
    resolved: dict[str, str] = {}
    for name, spec in known.items():
        value = given.get(name)
        value = spec.default if value is None else str(value)
        if spec.choices is not None and value not in spec.choices:
            raise ProgressiveConfigError(f"{task.key}: setting {name}={value!r} is not one of {list(spec.choices)}.")
        resolved[name] = value
    return resolved


def _module(task: TaskInfo):
    return importlib.import_module(f"{__name__}.{task.converter}")


def target_folder_name(task_key: str, dataset_id: int | None = None, **settings: Any) -> str:
    """``DatasetXXX_<name>`` that :func:`convert` writes for these arguments (validates the settings)."""
    task = _task(task_key)
    resolved = resolve_settings(task_key, settings)
    dataset_id = task.default_id if dataset_id is None else dataset_id
    if not isinstance(dataset_id, Integral) or isinstance(dataset_id, bool) or not 1 <= dataset_id <= 999:
        raise ProgressiveConfigError(f"dataset_id must be an integer in [1, 999] (nnU-Net uses 3-digit ids); "
                                     f"got {dataset_id!r}.")
    module = _module(task)
    name = module.dataset_name(task, resolved) if hasattr(module, "dataset_name") else task.dataset_name
    return f"Dataset{int(dataset_id):03d}_{name}"


def convert(task_key: str, source: str | os.PathLike, raw_root: str | os.PathLike, dataset_id: int | None = None,
            *, allow_partial: bool = False, overwrite: bool = False, num_processes: int | None = None,
            **settings: Any) -> Path:
    """Convert one downloaded dataset into ``raw_root/DatasetXXX_<name>`` and return that folder.

    Args:
        task_key: a key of :data:`TASKS`, e.g. ``"msd_spleen"``, ``"btcv"``, ``"amos22"``.
        source: the extracted official download (see ``TASKS[task_key].layout``).
        raw_root: nnU-Net raw folder (``$nnUNet_raw``); created if missing.
        dataset_id: nnU-Net dataset id (default ``TASKS[task_key].default_id``, 901-915).
        allow_partial: accept a case count different from the official release (a subset or another
            release); without it a different count raises :class:`CaseCountError`.
        overwrite: replace an existing target folder (otherwise ``FileExistsError``).
        num_processes: worker processes for per-case work (default: nnU-Net's ``default_num_processes``,
            i.e. ``$nnUNet_def_n_proc`` or 8).
        **settings: task settings (``TASKS[task_key].settings``), e.g. ``amos_modalities="ct_mri"``.

    Raises:
        ProgressiveConfigError: unknown task, setting or value, or a bad ``dataset_id``.
        SourceLayoutError: ``source`` is missing or does not have the official layout (names the layout).
        CaseCountError: the case count differs from the official release and ``allow_partial`` is False.
        FileExistsError: the target exists (without ``overwrite``) or another folder uses the same id.
    """
    task = _task(task_key)
    folder_name = target_folder_name(task_key, dataset_id, **settings)
    dataset_id = task.default_id if dataset_id is None else int(dataset_id)
    if num_processes is None:
        from nnunetv2.configuration import default_num_processes

        num_processes = default_num_processes
    options = ConvertOptions(allow_partial=allow_partial, num_processes=max(1, int(num_processes)),
                             settings=resolve_settings(task_key, settings))
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise layout_error(task, source, f"source folder {source} does not exist or is not a folder.")

    raw_root = Path(raw_root).expanduser().resolve()
    raw_root.mkdir(parents=True, exist_ok=True)
    target = claim_raw_dataset_folder(raw_root, dataset_id, folder_name, overwrite,
                                      how="overwrite=True (CLI: --overwrite)")
    if source == target or target in source.parents:
        raise ProgressiveConfigError(f"source {source} lies inside the target {target}; convert into another folder.")

    work = temporary_sibling(target)
    try:
        work.mkdir()
        built = _module(task).build(task, source, work, dataset_id, options)
        expected = built.notes.pop("expected_cases", task.expected_cases)
        finalize_dataset_json(built.folder, task, source, options, expected, built.notes)
        move_folder_into_place(built.folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
