#!/usr/bin/env python3
"""PGPS time ratios side by side: the voxel ideal, the network's own step times, with the loader, and a benchmark.

Reads the ``gpu_check.json`` of several ``scripts/gpu_check_pgps.py --stages all`` runs (one per dataset and
trainer) and, with ``--tasks``, a benchmark report's ``tasks.csv`` (``nnprog benchmark report``) for the time
ratios the same trainers measured in full training runs. Writes ``time_ratios.md`` and ``time_ratios.png``.

    python scripts/time_ratio_summary.py --checks w/531-* w/533-* --tasks results/offline_cpu/report/tasks.csv \\
        --out docs/results/offline_cpu_step_times
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

TRAINER_NAMES = {"nnUNetTrainer_PGPS_Efficiency": "Efficiency", "nnUNetTrainer_PGPS_Performance": "Performance"}
COLUMNS = (("voxels", "ideal (voxels)"), ("network_only", "network only"), ("with_loader", "with loader"),
           ("relative_iteration_time", "run: iterations"), ("relative_time", "run: epochs"))


def dataset_number(text: str) -> int:
    """531 from a ``-d`` argument (``531``, ``Dataset531_X``) or a report's task (``Dataset531_X 3d_fullres``)."""
    from nnunet_progressive.core.naming import dataset_id, parse_dataset_argument

    parsed = parse_dataset_argument(str(text).split()[0])
    return parsed if isinstance(parsed, int) else dataset_id(parsed)


def read_rows(checks: list[Path], tasks_csv: Path | None) -> list[dict]:
    """One row per check with its ratios, joined with the benchmark's ratios of the same dataset and trainer."""
    tasks = {}
    if tasks_csv is not None:
        if not tasks_csv.is_file():
            raise SystemExit(f"--tasks {tasks_csv}: no such file (a benchmark report's tasks.csv, written by "
                             f"`nnprog benchmark report RESULTS_DIR` into RESULTS_DIR/report/)")
        with open(tasks_csv, newline="") as handle:
            for task in csv.DictReader(handle):
                tasks[(dataset_number(task["task"]), task["trainer"])] = task
    rows = []
    for check in checks:
        path = check if check.name == "gpu_check.json" else check / "gpu_check.json"
        if not path.is_file():
            raise SystemExit(f"{check}: no gpu_check.json there (give gpu_check_pgps.py workspaces or their json)")
        result = json.loads(path.read_text())
        ratios = result.get("time_ratios")
        if not ratios:
            raise SystemExit(f"{path}: no time ratios (run gpu_check_pgps.py with --stages all to the end)")
        task = tasks.get((dataset_number(result["dataset"]), result["trainer"]), {})
        rows.append({"dataset": dataset_number(result["dataset"]), "trainer": result["trainer"],
                     "device": result["gpu_name"] or result["device"], "workers": result["workers"], **ratios,
                     **{key: float(task[key]) for key in ("relative_iteration_time", "relative_time")
                        if task.get(key)}})
    return sorted(rows, key=lambda r: (r["dataset"], r["trainer"]))


def write(rows: list[dict], out: Path) -> None:
    from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    lines = ["| dataset | mode | " + " | ".join(title for _, title in COLUMNS) + " | run: iterations / network only |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for r in rows:
        cells = [f"{r[key]:.2f}" if key in r else "n/a" for key, _ in COLUMNS]
        over = (f"{r['relative_iteration_time'] / r['network_only']:.2f}" if "relative_iteration_time" in r
                else "n/a")
        lines.append(f"| {r['dataset']} | {TRAINER_NAMES.get(r['trainer'], r['trainer'])} | "
                     + " | ".join(cells) + f" | {over} |")
    atomic_write_text(out / "time_ratios.md", "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows)), 4.5))
        width = 0.8 / len(COLUMNS)
        for k, (key, title) in enumerate(COLUMNS):
            ax.bar([i + (k - (len(COLUMNS) - 1) / 2) * width for i in range(len(rows))],
                   [r.get(key, 0.0) for r in rows], width, label=title)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{r['dataset']}\n{TRAINER_NAMES.get(r['trainer'], r['trainer'])}" for r in rows])
        ax.set_ylabel("time relative to constant patch")
        ax.set_title(f"PGPS time ratios ({rows[0]['device']}, {rows[0]['workers']} loader workers)",
                     fontsize="medium")
        ax.legend(fontsize="small", ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
        fig.tight_layout()
        atomic_save_figure(fig, out / "time_ratios.png", dpi=100)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", type=Path, nargs="+", required=True, help="gpu_check_pgps.py workspaces")
    parser.add_argument("--tasks", type=Path, default=None, help="a benchmark report's tasks.csv")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = read_rows(args.checks, args.tasks)
    write(rows, args.out)
    print((args.out / "time_ratios.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
