"""`nnprog compare RUN_FOLDER ...`: the time-to-Dice table of the Progressive DL paper for any set of runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_progressive.core.errors import ProgressiveConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="time each run needed to reach Dice thresholds, and the ratio to a reference run (CSV, markdown, PNG)",
        description="Reads time_to_dice.json from each fold folder (written by the *_StopAtDice and PDL "
        "trainers) and writes OUT_PREFIX.csv, OUT_PREFIX.md and OUT_PREFIX.png: for each Dice threshold the "
        "training time (Dice checks excluded) each run needed to first reach it and the ratio to the reference.",
    )
    parser.add_argument("run_folders", nargs="+", metavar="RUN_FOLDER",
                        help="fold folders, e.g. nnUNet_results/Dataset004_X/<trainer>__nnUNetPlans__3d_fullres/fold_0")
    parser.add_argument("--reference", default=None, metavar="RUN_FOLDER",
                        help="the run the ratios refer to (default: the first RUN_FOLDER; added if not listed)")
    parser.add_argument("--thresholds", default=None,
                        help="Dice thresholds, e.g. 0.7,0.8,0.9 (default: every 0.05 from the lowest to the highest "
                        "Dice any run reached)")
    parser.add_argument("--labels", default=None, help="comma-separated run names, one per RUN_FOLDER "
                        "(default: trainer name and fold)")
    parser.add_argument("-o", "--out", default="time_to_dice", metavar="OUT_PREFIX",
                        help="output prefix (default: ./time_to_dice -> time_to_dice.csv/.md/.png)")
    parser.set_defaults(func=run)


def default_label(folder: Path, data: dict) -> str:
    """``<trainer> fold <f>`` from the log's trainer (else the folder name) and ``fold_<f>``."""
    trainer = data.get("trainer") or folder.parent.name.split("__")[0]
    fold = folder.name.removeprefix("fold_")
    return f"{trainer} fold {fold}"


def unique_labels(labels: list[str], folders: list[Path]) -> list[str]:
    """Disambiguate repeated labels with the dataset folder name, then with a counter."""
    counts = {label: labels.count(label) for label in labels}
    labels = [f"{label} ({folder.parent.parent.name})" if counts[label] > 1 else label
              for label, folder in zip(labels, folders)]
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        result.append(label if labels.count(label) == 1 else f"{label} #{seen[label]}")
    return result


def run(args: argparse.Namespace) -> int:
    from nnunet_progressive.benchmark.results import load_time_to_dice
    from nnunet_progressive.core.io import atomic_write_text, check_writable
    from nnunet_progressive.core.tables import markdown_table
    from nnunet_progressive.stopping.time_to_dice import (
        default_thresholds,
        parse_thresholds,
        plot_dice_vs_time,
        table_csv,
        table_markdown,
        time_to_dice_table,
    )

    prefix = Path(args.out)
    for suffix in (".csv", ".md", ".png"):  # before any run folder is read
        check_writable(prefix.with_name(prefix.name + suffix), "output (-o)")
    folders = [Path(f).resolve() for f in args.run_folders]
    reference_folder = Path(args.reference).resolve() if args.reference else folders[0]
    if reference_folder not in folders:
        folders.insert(0, reference_folder)
    logs = [load_time_to_dice(folder) for folder in folders]
    if args.labels:
        given = [label.strip() for label in args.labels.split(",")]
        if len(given) != len(args.run_folders):
            raise ProgressiveConfigError(f"--labels: expected {len(args.run_folders)} names (one per RUN_FOLDER), "
                                         f"got {len(given)}: {given}")
        by_folder = dict(zip([Path(f).resolve() for f in args.run_folders], given))
        labels = [by_folder.get(f) or default_label(f, log) for f, log in zip(folders, logs)]
    else:
        labels = [default_label(f, log) for f, log in zip(folders, logs)]
    labels = unique_labels(labels, folders)
    runs = {label: log["checks"] for label, log in zip(labels, logs)}
    reference = labels[folders.index(reference_folder)]
    thresholds = parse_thresholds(args.thresholds) if args.thresholds else default_thresholds(runs)
    if not thresholds:
        raise ProgressiveConfigError("no Dice checks in any time_to_dice.json; give --thresholds or train longer")
    rows = time_to_dice_table(runs, thresholds, reference)
    table = table_markdown(rows, reference)
    listing = markdown_table(["Run", "Fold folder", "Checks", "Stopped by"],
                             [[label, str(folder), len(log["checks"]), log.get("stopped_by") or "-"]
                              for label, folder, log in zip(labels, folders, logs)])
    png = prefix.with_name(prefix.name + ".png")
    markdown = (f"# Time to Dice\n\nReference: **{reference}**. Training wall time in seconds (Dice checks "
                f"excluded) until the validation Dice first reached each threshold; ratio = time / reference's time."
                f"\n\n{table}\n## Runs\n\n{listing}\n![Dice against training time]({png.name})\n")
    atomic_write_text(prefix.with_name(prefix.name + ".csv"), table_csv(rows, reference))
    atomic_write_text(prefix.with_name(prefix.name + ".md"), markdown)
    plot_dice_vs_time(runs, png, thresholds, reference)
    print(table, end="")
    for suffix in (".csv", ".md", ".png"):
        print(prefix.with_name(prefix.name + suffix))
    return 0
