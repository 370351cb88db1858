"""Generate, plan and preprocess a small dataset with nnU-Net's own commands (demo, tests, benchmarks)."""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path

from nnunet_progressive.core.errors import NnunetCommandError, ProgressiveConfigError
from nnunet_progressive.core.io import atomic_write_json
from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders, run_logged

SMALL_PLANS = "nnUNetPlans_small"
SMALL_FEATURES_PER_STAGE = (8, 16, 32, 64, 64, 64, 64, 64)  # narrow network of SMALL_PLANS (first N used)




def write_small_plans(
    plans_file: str | os.PathLike,
    configurations: Sequence[str],
    features_per_stage: Sequence[int] = SMALL_FEATURES_PER_STAGE,
    convs_per_stage: int = 1,
    plans_name: str = SMALL_PLANS,
) -> Path:
    """A copy of nnU-Net plans with a narrower, shallower-per-stage network, for CPU runs.

    Patch size, pooling, spacing and the data identifier stay as planned, so the preprocessed data is
    shared with the source plans. Returns the new plans file (written next to the source).
    """
    plans_file = Path(plans_file)
    plans = json.loads(plans_file.read_text())
    small = copy.deepcopy(plans)
    small["plans_name"] = plans_name
    for name in configurations:
        if name not in small["configurations"]:
            raise ProgressiveConfigError(f"configuration {name!r} is not in {plans_file}; it has "
                                         f"{list(small['configurations'])}: pick one of those, or plan it with "
                                         f"nnUNetv2_plan_and_preprocess -c {name}")
        arch = small["configurations"][name]["architecture"]["arch_kwargs"]
        n_stages = arch["n_stages"]
        if len(features_per_stage) < n_stages:
            raise ProgressiveConfigError(f"configuration {name!r} of {plans_file} has {n_stages} stages: give "
                                         f"{n_stages} feature counts, got {len(features_per_stage)}")
        arch["features_per_stage"] = [int(f) for f in features_per_stage[:n_stages]]
        conv_key = "n_conv_per_stage" if "n_conv_per_stage" in arch else "n_blocks_per_stage"
        arch[conv_key] = [convs_per_stage] * n_stages
        arch["n_conv_per_stage_decoder"] = [convs_per_stage] * (n_stages - 1)
    target = plans_file.with_name(f"{plans_name}.json")
    atomic_write_json(target, small)
    return target


def plan_and_preprocess(
    dataset_id: int,
    folders: NnunetFolders,
    configurations: Sequence[str] = ("3d_fullres",),
    num_processes: int = 2,
    log_file: str | os.PathLike | None = None,
) -> None:
    """``nnUNetv2_plan_and_preprocess`` for one dataset (output to ``log_file`` if given). When it fails on a
    dataset with unexpected label values, label maps off their images' geometry or no foreground at all, the
    error says so in one message (datasets/integrity.py); other failures keep nnU-Net's output."""
    command = [
        "nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", *configurations,
        "-np", *([str(num_processes)] * len(configurations)), "-npfp", str(num_processes),
        "--verify_dataset_integrity",
    ]
    try:
        run_logged(command, folders.environment(), log_file)
    except NnunetCommandError:
        raw = sorted(folders.raw.glob(f"Dataset{dataset_id:03d}_*"))
        problems = _raw_problems(raw[0]) if raw else []
        if problems:
            where = f" (nnU-Net's output: {log_file})" if log_file else ""
            raise ProgressiveConfigError(f"nnU-Net cannot plan {raw[0]}{where}: " + "; ".join(problems)) from None
        raise


def _raw_problems(raw_folder: Path) -> list[str]:
    """What :mod:`nnunet_progressive.datasets.integrity` finds wrong with a raw dataset ([] if it cannot tell)."""
    from nnunet_progressive.core.naming import background_label_values
    from nnunet_progressive.datasets.integrity import (
        expected_label_values,
        raw_dataset_problems,
        summarise_raw_dataset,
    )

    try:
        dataset_json = json.loads((raw_folder / "dataset.json").read_text())
        return raw_dataset_problems(summarise_raw_dataset(raw_folder), expected_label_values(dataset_json),
                                    background_label_values(dataset_json))
    except Exception:  # noqa: BLE001 - a dataset too broken to read keeps nnU-Net's own report
        return []


def prepare_generated_dataset(
    name: str,
    dataset_id: int,
    folders: NnunetFolders,
    configurations: Sequence[str] = ("3d_fullres",),
    log_file: str | os.PathLike | None = None,
    features_per_stage: Sequence[int] | None = SMALL_FEATURES_PER_STAGE,
) -> str:
    """Generate a dataset (``data.generated``), plan and preprocess it with nnU-Net, write small plans.

    ``features_per_stage=None`` keeps nnU-Net's planned network only. Returns ``DatasetXXX_Name``.
    """
    from nnunet_progressive.datasets.generated import write_generated

    dataset_name = write_generated(name, folders.raw, dataset_id, overwrite=True).name
    plan_and_preprocess(dataset_id, folders, configurations, num_processes=2, log_file=log_file)
    if features_per_stage is not None:
        write_small_plans(folders.preprocessed / dataset_name / "nnUNetPlans.json", configurations,
                          features_per_stage=features_per_stage)
    return dataset_name
