"""`nnprog verify MODEL_FOLDER`: every checkpoint of a model checked against the sha256 in its sidecar.

``nnUNetv2_train --c``, ``--val`` and ``--val_best`` check the checkpoint they load themselves; ``nnUNetv2_predict``
loads checkpoints through nnU-Net's predictor, which this package does not change: run this before predicting with a
model that was copied, moved or kept on unreliable storage.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.records import (
    CHECKPOINT_STATE_SUFFIX,
    CheckpointState,
    checkpoint_checksum_problem,
    checkpoint_state_path,
    read_record,
)


@dataclass(frozen=True)
class CheckpointVerdict:
    """One checkpoint: ``verified`` (content as written), ``damaged`` or ``unverified`` (no checksum), and why."""

    path: Path
    status: str
    reason: str = ""


def verify_checkpoint(path: Path) -> CheckpointVerdict:
    """``path`` against its sidecar's sha256."""
    sidecar = checkpoint_state_path(path)
    if not sidecar.is_file():
        return CheckpointVerdict(path, "unverified", f"no {sidecar.name} (not written by a trainer of this package)")
    try:
        state = read_record(sidecar, CheckpointState)
    except ProgressiveConfigError as error:
        return CheckpointVerdict(path, "damaged", str(error))
    if state.sha256 is None:
        return CheckpointVerdict(path, "unverified", f"{sidecar.name} has no checksum (written by an older version)")
    problem = checkpoint_checksum_problem(path, state)
    return CheckpointVerdict(path, "damaged", problem) if problem else CheckpointVerdict(path, "verified")


def verify_model_folder(folder: str | os.PathLike) -> list[CheckpointVerdict]:
    """Every ``*.pth`` under ``folder`` (a model folder with ``fold_*`` folders, or one fold folder), checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProgressiveConfigError(f"{folder} is not a folder; give a model folder "
                                     f"(nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION) or a fold folder")
    checkpoints = sorted(p for p in folder.rglob("*.pth") if p.is_file() and not p.name.startswith("."))
    if not checkpoints:
        raise ProgressiveConfigError(f"no checkpoint (*.pth) under {folder}; give a model folder "
                                     f"(nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION) or a fold folder")
    return [verify_checkpoint(p) for p in checkpoints]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check every checkpoint of a model against the sha256 its trainer recorded (before nnUNetv2_predict)",
        description="Checks each *.pth under MODEL_FOLDER against the sha256 in its sidecar "
        f"(<checkpoint>{CHECKPOINT_STATE_SUFFIX}), written when the checkpoint was saved. nnUNetv2_predict does not "
        "check checkpoints itself. Exit code 1 if a checkpoint is damaged, 0 otherwise (checkpoints without a "
        "checksum are listed as unverified).",
    )
    parser.add_argument("model_folder", metavar="MODEL_FOLDER",
                        help="nnUNet_results/DatasetXXX_Name/TRAINER__PLANS__CONFIGURATION, or one of its fold_* "
                        "folders")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    verdicts = verify_model_folder(args.model_folder)
    for verdict in verdicts:
        print(f"{verdict.status:10s} {verdict.path}" + (f": {verdict.reason}" if verdict.reason else ""))
    damaged = [v for v in verdicts if v.status == "damaged"]
    if damaged:
        print(f"{len(damaged)} of {len(verdicts)} checkpoints damaged; restore them from a copy before predicting, "
              f"or continue the training with nnUNetv2_train ... --c (it falls back to an intact checkpoint)")
        return 1
    return 0
