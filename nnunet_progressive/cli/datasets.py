"""`nnprog convert`: convert a downloaded benchmark dataset from its official layout to nnU-Net v2 raw format."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

from nnunet_progressive.cli.arguments import int_at_least, positive_int

# The registry is plain data (no nnU-Net or SimpleITK import); the converters load when the command runs.
from nnunet_progressive.core.naming import dataset_id as parse_dataset_id
from nnunet_progressive.datasets.converters.tasks import TASKS, TaskInfo, TaskSetting


def _all_settings() -> dict[str, tuple[TaskSetting, list[str]]]:
    """Every task setting name -> (its spec, the task keys that accept it)."""
    found: dict[str, tuple[TaskSetting, list[str]]] = {}
    for task in TASKS.values():
        for setting in task.settings:
            found.setdefault(setting.name, (setting, []))[1].append(task.key)
    return found


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a downloaded benchmark dataset (MSD, BTCV, AMOS22, KiTS23, TotalSegmentator, ToothFairy2) "
             "to nnU-Net raw format",
        description=(
            "Convert one of the PGPS benchmark's 15 datasets from its official download layout into "
            "$nnUNet_raw/DatasetXXX_<name>. Nothing is downloaded: get the data from the page listed by "
            "`nnprog convert --list` and pass the extracted folder as --source. The dataset is built in a hidden "
            "temporary folder and renamed into place; the case count is checked against the official release. "
            "See docs/datasets.md."
        ),
    )
    parser.add_argument("task", nargs="?", choices=sorted(TASKS), metavar="TASK",
                        help="task key (see --list), e.g. msd_spleen, btcv, amos22, kits23")
    parser.add_argument("--list", action="store_true", help="print the tasks (id, cases, download page, licence)")
    parser.add_argument("--source", metavar="PATH", help="the extracted official download of TASK")
    parser.add_argument("--raw-root", metavar="PATH", default=None, help="nnU-Net raw folder (default: $nnUNet_raw)")
    parser.add_argument("--dataset-id", metavar="N", type=int_at_least(1, 999), default=None,
                        help="nnU-Net dataset id (default: the task's id, 901-915)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="convert a subset (or another release): accept a case count other than the official one")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DatasetXXX_<name> folder")
    parser.add_argument("-np", "--num-processes", dest="num_processes", metavar="N", type=positive_int, default=None,
                        help="worker processes (default: nnU-Net's default, $nnUNet_def_n_proc or 8)")
    for name, (setting, keys) in _all_settings().items():
        parser.add_argument(_flag(name), dest=name, default=None, choices=setting.choices,
                            metavar=None if setting.choices else "VALUE",
                            help=f"[{', '.join(keys)}] {setting.help} (default: {setting.default})")
    parser.set_defaults(func=run)


def format_task_table(tasks: Iterable[TaskInfo]) -> str:
    """The task list as text: one row per task, then the per-task notes (case-count variants, subset choices)."""
    tasks = list(tasks)
    header = ("TASK", "ID", "CASES", "MODALITY", "DOWNLOAD", "LICENCE")
    rows = [(t.key, str(t.default_id), str(t.expected_cases), t.modality, t.download_url, t.licence) for t in tasks]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1] for row in [header, *rows]]
    notes = []
    for t in tasks:
        if t.expected_cases_note:
            notes.append(f"{t.key}: cases: {t.expected_cases_note}.")
        if t.subset_choice:
            notes.append(f"{t.key}: {t.subset_choice}")
    if notes:
        lines += ["", "Notes (choices the paper leaves open are ours and are settings):", *notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``nnprog convert`` with parsed ``args``; returns the exit code (errors: ProgressiveConfigError)."""
    from nnunet_progressive.core.errors import ProgressiveConfigError

    if args.list:
        print(format_task_table(TASKS.values()))
        return 0
    if args.task is None:
        raise ProgressiveConfigError("name a TASK (see `nnprog convert --list`) or pass --list.")
    task = TASKS[args.task]
    settings = {}
    for name, (_, keys) in _all_settings().items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.task not in keys:
            raise ProgressiveConfigError(f"{_flag(name)} applies only to {', '.join(keys)}, not {args.task}.")
        settings[name] = value
    if args.source is None:
        raise ProgressiveConfigError(f"--source is required: the extracted download of {task.display_name} "
                                     f"({task.layout}).")
    raw_root = args.raw_root or os.environ.get("nnUNet_raw")
    if not raw_root:
        raise ProgressiveConfigError("no --raw-root given and $nnUNet_raw is not set; pass --raw-root PATH or export "
                                     "nnUNet_raw.")

    from nnunet_progressive.core.io import check_writable_folder
    from nnunet_progressive.datasets.converters import convert

    try:
        check_writable_folder(raw_root, "--raw-root" if args.raw_root else "$nnUNet_raw")
        folder = convert(args.task, args.source, raw_root, args.dataset_id, allow_partial=args.allow_partial,
                         overwrite=args.overwrite, num_processes=args.num_processes, **settings)
    except ProgressiveConfigError:  # (DatasetExistsError among them) said as it is
        raise
    except (RuntimeError, OSError, EOFError) as error:  # e.g. a damaged image inside nnU-Net's MSD converter
        reason = " ".join(str(error).split())[:400]
        raise ProgressiveConfigError(
            f"converting {args.task} from {args.source} failed ({type(error).__name__}: {reason}); a source file may "
            f"be damaged or incomplete: re-extract or re-download it, or leave that case out and convert with "
            f"--allow-partial.") from None
    dataset_id = parse_dataset_id(folder.name)
    print(f"Wrote {folder}\nNext: nnUNetv2_plan_and_preprocess -d {dataset_id} --verify_dataset_integrity")
    return 0
