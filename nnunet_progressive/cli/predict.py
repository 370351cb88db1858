"""`nnprog predict ARGS`: ``nnUNetv2_predict ARGS`` after checking the checkpoints it will load.

nnU-Net's predictor loads checkpoints with ``torch.load``, which reads a checkpoint whose bytes changed since it was
written (disk, copy, transfer) without a word. This command finds the checkpoints the same arguments make
``nnUNetv2_predict`` load (``-d``, ``-p``, ``-tr``, ``-c``, ``-f``, ``-chk``, with nnU-Net's defaults and its own
folder naming), checks each against the sha256 its trainer recorded in the sidecar, and then replaces itself by
``nnUNetv2_predict`` with the arguments unchanged. A damaged or missing checkpoint stops it before any prediction;
a checkpoint without a checksum (stock nnU-Net trainers, older versions) is named as unverified and used.
``nnUNetv2_predict`` called directly checks nothing; ``nnUNetv2_predict_from_modelfolder`` is not covered.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.cli.verify import CheckpointVerdict, verify_checkpoint
from nnunet_progressive.core.errors import ProgressiveConfigError


@dataclass(frozen=True)
class PredictionModel:
    """What ``nnUNetv2_predict``'s arguments say about the model it loads."""

    dataset: str
    plans: str
    trainer: str
    configuration: str
    folds: tuple[str, ...]
    checkpoint: str


def _option_values(arguments: Sequence[str], option: str) -> list[str] | None:
    """The values after the last ``option`` (exact token: ``-d`` is not ``-device``), None if it is not given."""
    found = None
    for index, token in enumerate(arguments):
        if token == option:
            found = []
            for value in arguments[index + 1:]:
                if value.startswith("-") and not value.lstrip("-").replace(".", "").isdigit():
                    break
                found.append(value)
    return found


def prediction_model(arguments: Sequence[str]) -> PredictionModel:
    """The model options among ``nnUNetv2_predict`` arguments, with nnU-Net's defaults (the rest are ignored)."""
    values = {option: _option_values(arguments, option) for option in ("-d", "-p", "-tr", "-c", "-f", "-chk")}
    missing = [option for option in ("-d", "-c") if not values[option]]
    if missing:
        raise ProgressiveConfigError(f"missing {' and '.join(missing)}: give nnUNetv2_predict's arguments, e.g. "
                                     f"nnprog predict -i IN -o OUT -d 501 -c 3d_fullres -tr TRAINER -p PLANS -f 0")

    def single(option: str, default: str) -> str:
        return values[option][0] if values[option] else default

    return PredictionModel(single("-d", ""), single("-p", "nnUNetPlans"), single("-tr", "nnUNetTrainer"),
                           single("-c", ""), tuple(values["-f"] or ("0", "1", "2", "3", "4")),
                           single("-chk", "checkpoint_final.pth"))


def model_checkpoints(model: PredictionModel) -> list[Path]:
    """The checkpoint files ``nnUNetv2_predict`` opens for ``model`` (nnU-Net's own folder naming)."""
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    try:
        folder = Path(get_output_folder(model.dataset, model.trainer, model.plans, model.configuration))
    except (RuntimeError, ValueError):  # nnU-Net cannot map the dataset id to a name (its message spans several lines)
        raise ProgressiveConfigError(f"dataset {model.dataset!r} was not found in nnUNet_raw, nnUNet_preprocessed or "
                                     f"nnUNet_results; check -d and these environment variables") from None
    return [folder / f"fold_{fold}" / model.checkpoint for fold in model.folds]


def checked_checkpoints(paths: Sequence[Path]) -> list[CheckpointVerdict]:
    """Each checkpoint's verdict; a missing or damaged one is one error naming every such file and the fix."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ProgressiveConfigError("no checkpoint " + ", ".join(map(str, missing)) + "; train that fold, or "
                                     "choose other folds (-f) or another checkpoint (-chk)")
    verdicts = [verify_checkpoint(p) for p in paths]
    damaged = [v for v in verdicts if v.status == "damaged"]
    if damaged:
        raise ProgressiveConfigError(
            "damaged checkpoint(s), nothing predicted: " + "; ".join(f"{v.path}: {v.reason}" for v in damaged)
            + ". Restore them from a copy, or continue the training with nnUNetv2_train ... --c (it falls back to "
            "an intact checkpoint)")
    return verdicts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="nnUNetv2_predict with the same arguments, after checking the checkpoints it will load (sha256)",
        description="Checks the checkpoints nnUNetv2_predict will load (from -d, -p, -tr, -c, -f, -chk) against "
        "the sha256 their trainer recorded, then runs nnUNetv2_predict with the arguments unchanged. A damaged or "
        "missing checkpoint stops it before any prediction (exit 2); one without a checksum is named as "
        "unverified. All arguments are nnUNetv2_predict's: see nnUNetv2_predict -h.",
    )
    parser.set_defaults(func=run, passes_through=True)


def run(args: argparse.Namespace) -> int:
    from nnunet_progressive.nnunet.orchestration.runner import nnunet_command

    arguments = list(args.passed_through)
    verdicts = checked_checkpoints(model_checkpoints(prediction_model(arguments)))
    for verdict in verdicts:
        print(f"nnprog predict: {verdict.status} {verdict.path}" + (f" ({verdict.reason})" if verdict.reason else ""),
              file=sys.stderr)
    program, *_ = nnunet_command(["nnUNetv2_predict"])
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(program, ["nnUNetv2_predict", *arguments])
    return 0  # not reached: the process is nnUNetv2_predict now
