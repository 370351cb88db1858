#!/usr/bin/env python3
"""PGPS benchmark: constant patch vs Efficiency vs Performance on the same data, side by side.

Reports, relative to the constant-patch run: measured training time, the ideal compute ratio of the
schedule (voxels processed), how far the measured ratio is from the ideal one, the stage-switch
overhead, and the final validation Dice. Writes <workspace>/benchmark_pgps.{md,json,png}.

    python scripts/benchmark_pgps.py --workspace benchmark_runs/pgps --epochs 18 --iterations 25

Absolute times only mean something on the machine that produced them; compare ratios.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from nnunet_progressive.core.io import atomic_save_figure, atomic_write_json, atomic_write_text
from nnunet_progressive.datasets.prepare import SMALL_FEATURES_PER_STAGE, SMALL_PLANS, prepare_generated_dataset
from nnunet_progressive.nnunet.runner import NnunetFolders, TrainingRun, train

TRAINERS = ("nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Efficiency", "nnUNetTrainer_PGPS_Performance")
DATASET_ID = 991


def measure(workspace: Path, preset: str, epochs: int, iterations: int, device: str, small: bool) -> list[dict]:
    folders = NnunetFolders.under(workspace)
    log = workspace / "benchmark.log"
    small_features = SMALL_FEATURES_PER_STAGE if small else None
    dataset_name = prepare_generated_dataset(preset, DATASET_ID, folders, log_file=log,
                                             features_per_stage=small_features)
    plans = SMALL_PLANS if small else "nnUNetPlans"
    knobs = {"NNPROG_EPOCHS": str(epochs), "NNPROG_ITERATIONS": str(iterations), "NNPROG_VAL_ITERATIONS": "2"}
    rows = []
    for trainer in tqdm(TRAINERS, desc="trainers", unit="run"):
        run = TrainingRun(str(DATASET_ID), "3d_fullres", 0, trainer, plans, device=device, knobs=knobs)
        fold = run.output_folder(folders, dataset_name)
        if fold.exists():
            shutil.rmtree(fold)
        process_seconds = train(run, folders, log)
        summary = json.loads((fold / "run_summary.json").read_text())
        validation = json.loads((fold / "validation" / "summary.json").read_text())
        curriculum = json.loads((fold / "curriculum.json").read_text()) if (fold / "curriculum.json").exists() else None
        rows.append({
            "trainer": trainer,
            "train_wall_seconds": summary["train_wall_seconds"],
            "iteration_seconds": summary["train_iteration_seconds"],
            "process_seconds": process_seconds,
            "ideal_ratio": curriculum["schedule"]["relative_compute"] if curriculum else 1.0,
            "switch_seconds": curriculum["total_switch_seconds"] if curriculum else 0.0,
            "stages": len(curriculum["schedule"]["stages"]) if curriculum else 1,
            "dice": validation["foreground_mean"]["Dice"],
            "device": summary["device"],
            "gpu_name": summary["gpu_name"],
        })
    reference, reference_iterations = rows[0]["train_wall_seconds"], rows[0]["iteration_seconds"]
    for row in rows:
        row["measured_ratio"] = row["train_wall_seconds"] / reference
        row["iteration_ratio"] = row["iteration_seconds"] / reference_iterations
        row["gap_to_ideal"] = row["iteration_ratio"] / row["ideal_ratio"] - 1.0
        row["switch_overhead"] = row["switch_seconds"] / row["train_wall_seconds"]
    return rows


def markdown(rows: list[dict], command: str) -> str:
    header = ("| trainer | stages | epoch time (s) | epoch time ratio | iteration time ratio | ideal ratio | "
              "iteration ratio / ideal - 1 | switch overhead | val. Dice |\n|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in rows:
        lines.append(
            f"| {r['trainer']} | {r['stages']} | {r['train_wall_seconds']:.0f} | {r['measured_ratio']:.2f} | "
            f"{r['iteration_ratio']:.2f} | {r['ideal_ratio']:.2f} | {100 * r['gap_to_ideal']:+.0f}% | "
            f"{100 * r['switch_overhead']:.1f}% | "
            f"{r['dice']:.3f} |"
        )
    device = rows[0]["gpu_name"] or rows[0]["device"]
    notes = ("Epoch time: nnU-Net's epoch durations (training iterations, validation iterations, checkpoints, "
             "plots). Iteration time: the training iterations alone, what the ideal ratio (voxels processed "
             "relative to constant patch) models. Switch overhead: loader rebuilds / epoch time.")
    return f"Command: `{command}`\n\nDevice: {device}\n\n" + "\n".join(lines) + "\n\n" + notes + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    names = [r["trainer"].replace("nnUNetTrainer_", "") for r in rows]
    fig, (ax_time, ax_dice) = plt.subplots(1, 2, figsize=(11, 4.5))
    x = range(len(rows))
    ax_time.bar([i - 0.27 for i in x], [r["measured_ratio"] for r in rows], 0.27, label="epoch time")
    ax_time.bar(list(x), [r["iteration_ratio"] for r in rows], 0.27, label="training iterations")
    ax_time.bar([i + 0.27 for i in x], [r["ideal_ratio"] for r in rows], 0.27, label="ideal (voxels)")
    ax_time.set_xticks(list(x), names)
    ax_time.set_ylabel("training time relative to constant patch")
    ax_time.legend()
    ax_dice.bar(names, [r["dice"] for r in rows], color=[f"C{i}" for i in x])
    ax_dice.set_ylim(0, 1)
    ax_dice.set_ylabel("final validation Dice (mean foreground)")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default="benchmark_runs/pgps")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--full-network", action="store_true", help="use nnU-Net's planned network (GPU)")
    args = parser.parse_args(argv)
    workspace = Path(args.workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    rows = measure(workspace, args.preset, args.epochs, args.iterations, args.device, not args.full_network)
    command = "python scripts/benchmark_pgps.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, command.strip())
    atomic_write_text(workspace / "benchmark_pgps.md", text)
    atomic_write_json(workspace / "benchmark_pgps.json", rows)
    plot(rows, workspace / "benchmark_pgps.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
