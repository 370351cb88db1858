"""`nnprog check-dataset DATASET`: a raw nnU-Net dataset checked before planning, each problem in one line.

nnU-Net's ``nnUNetv2_plan_and_preprocess --verify_dataset_integrity`` reports a label value dataset.json does not
declare, or a label map off its image's shape or spacing, as a traceback after its own printout, and its planning
crashes on a dataset without foreground (``IndexError``); without the flag a spacing mismatch is planned without a
word. This command reads every training case with nnU-Net's reader, as the planning does, and names each problem
with its cases and the fix (nnunet_progressive/datasets/integrity.py).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError
from nnunet_progressive.core.naming import dataset_id, is_dataset_name, parse_dataset_argument


def raw_folder_of(dataset: str) -> Path:
    """An id, a ``DatasetXXX_Name`` in ``$nnUNet_raw``, or the path of a raw dataset folder."""
    path = Path(dataset)
    if (path / "dataset.json").is_file():
        return path
    if path.name != str(dataset) or not (str(dataset).strip().isdigit() or is_dataset_name(str(dataset))):
        raise ProgressiveConfigError(f"{dataset} is not a raw dataset folder (no dataset.json in it); give its path, "
                                     f"its id or its DatasetXXX_Name in $nnUNet_raw")
    argument = parse_dataset_argument(dataset)
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise ProgressiveConfigError(f"nnUNet_raw is not set: export it, or give the dataset's folder instead of "
                                     f"{dataset}")
    matches = ([Path(raw, argument)] if isinstance(argument, str) else
               sorted(p for p in Path(raw).glob(f"Dataset{argument:03d}_*") if is_dataset_name(p.name)))
    matches = [m for m in matches if m.is_dir()]
    if len(matches) != 1:
        raise ProgressiveConfigError(f"dataset {dataset}: {'no folder' if not matches else 'several folders'} in "
                                     f"nnUNet_raw ({raw}){': ' + str([m.name for m in matches]) if matches else ''}; "
                                     f"give the dataset's folder or its full name")
    if not (matches[0] / "dataset.json").is_file():
        raise ProgressiveConfigError(f"{matches[0]} has no dataset.json; write it (nnU-Net's "
                                     f"documentation/dataset_format.md)")
    return matches[0]


def check_raw_dataset(folder: Path) -> tuple[int, list[str]]:
    """(the number of training cases, the problems found: one line each)."""
    from nnunet_progressive.core.naming import background_label_values
    from nnunet_progressive.datasets.integrity import (
        expected_label_values,
        raw_dataset_problems,
        summarise_raw_dataset,
    )

    try:
        dataset_json = json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError) as error:
        raise ProgressiveConfigError(f"{folder / 'dataset.json'} cannot be read ({error}); fix the file") from None
    if not isinstance(dataset_json, dict) or not isinstance(dataset_json.get("labels"), dict):
        raise ProgressiveConfigError(f"{folder / 'dataset.json'} has no 'labels' mapping; nnU-Net needs one "
                                     f"(documentation/dataset_format.md)")
    if "file_ending" not in dataset_json:
        raise ProgressiveConfigError(f"{folder / 'dataset.json'} has no 'file_ending' (e.g. \".nii.gz\"); nnU-Net "
                                     f"needs one (documentation/dataset_format.md)")
    if "dataset" not in dataset_json:
        for sub in ("imagesTr", "labelsTr"):
            if not (folder / sub).is_dir():
                raise ProgressiveConfigError(f"{folder} has no {sub} folder; nnU-Net's raw layout needs imagesTr and "
                                             f"labelsTr (documentation/dataset_format.md)")
    cases = summarise_raw_dataset(folder)
    if not cases:
        raise ProgressiveConfigError(f"{folder} has no training case (imagesTr and labelsTr as dataset.json's "
                                     f"file_ending says); nothing to plan")
    return len(cases), raw_dataset_problems(cases, expected_label_values(dataset_json),
                                            background_label_values(dataset_json))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-dataset",
        help="check a raw dataset before planning: label values, label maps on their images, foreground",
        description="Reads every training case of a raw nnU-Net dataset with nnU-Net's reader and names, one line "
        "each, the cases whose label maps hold values dataset.json does not declare, whose label map differs from "
        "its image in shape or spacing, and a dataset with no foreground at all. nnU-Net's planning reports these "
        "as tracebacks (or, without --verify_dataset_integrity, plans a spacing mismatch without a word). Exit "
        "code 1 if a problem is found, 0 otherwise.",
    )
    parser.add_argument("dataset", metavar="DATASET",
                        help="the dataset's id or DatasetXXX_Name in $nnUNet_raw, or its folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = raw_folder_of(args.dataset)
    count, problems = check_raw_dataset(folder)
    plan = (f"nnUNetv2_plan_and_preprocess -d {dataset_id(folder.name)} --verify_dataset_integrity"
            if is_dataset_name(folder.name) else "nnUNetv2_plan_and_preprocess")
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{len(problems)} problem(s) in {folder} ({count} training cases); fix them, then {plan}")
        return 1
    print(f"{folder}: {count} training cases; label values, label maps on their images and foreground are fine. "
          f"Next: {plan}")
    return 0
