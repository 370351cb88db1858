"""The demo: constant-patch nnU-Net vs PGPS Efficiency on generated data, same budget, on a CPU.

Generates the ``demo`` synthetic dataset (64^3 CT-like volumes with one organ and small lesions), plans
and preprocesses it with nnU-Net, narrows the planned network (``nnUNetPlans_small``: fewer features and
one convolution per stage, so it trains on 2 CPU cores), trains both trainers with the same epochs and
iterations, and reports wall time, validation Dice and the time ratio as a table and a plot.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text
from nnunet_progressive.datasets.prepare import SMALL_PLANS, prepare_generated_dataset
from nnunet_progressive.datasets.synthetic import PRESETS
from nnunet_progressive.nnunet.runner import NnunetFolders, TrainingRun, train

DEMO_DATASET_ID = 990
DEMO_TRAINERS = ("nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Efficiency")


@dataclass(frozen=True)
class DemoResult:
    trainer: str
    wall_seconds: float
    train_seconds: float
    dice: float
    dice_per_class: dict[str, float]
    relative_compute: float | None


def _fold_result(trainer: str, fold: Path, wall_seconds: float) -> DemoResult:
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    run_summary = json.loads((fold / "run_summary.json").read_text())
    curriculum_file = fold / "curriculum.json"
    relative = None
    if curriculum_file.is_file():
        relative = json.loads(curriculum_file.read_text())["schedule"]["relative_compute"]
    return DemoResult(
        trainer=trainer,
        wall_seconds=wall_seconds,
        train_seconds=run_summary["train_wall_seconds"],
        dice=float(summary["foreground_mean"]["Dice"]),
        dice_per_class={label: float(values["Dice"]) for label, values in summary["mean"].items()},
        relative_compute=relative,
    )


def results_table(results: list[DemoResult], label_names: dict[str, str]) -> str:
    """Markdown table; ratios relative to the first (constant-patch) run."""
    reference = results[0]
    classes = sorted(results[0].dice_per_class, key=int)
    header = ["trainer", "training time (s)", "time ratio", "ideal ratio", "val. Dice (mean fg)"]
    header += [f"Dice {label_names.get(c, c)}" for c in classes]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        ideal = f"{r.relative_compute:.2f}" if r.relative_compute is not None else "1.00"
        row = [r.trainer, f"{r.train_seconds:.0f}", f"{r.train_seconds / reference.train_seconds:.2f}", ideal,
               f"{r.dice:.3f}"] + [f"{r.dice_per_class[c]:.3f}" for c in classes]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_results(results: list[DemoResult], label_names: dict[str, str], path: Path) -> None:
    """Two panels: training time and validation Dice per class, one bar group per trainer."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    classes = sorted(results[0].dice_per_class, key=int)
    fig, (ax_time, ax_dice) = plt.subplots(1, 2, figsize=(11, 4.5))
    names = [r.trainer.replace("nnUNetTrainer_", "") for r in results]
    colors = [f"C{i}" for i in range(len(results))]
    ax_time.bar(names, [r.train_seconds for r in results], color=colors)
    ax_time.set_ylabel("training wall time (s)")
    ax_time.set_title("training time (same epochs and iterations)")
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        xs = [j + i * width for j in range(len(classes) + 1)]
        ax_dice.bar(xs, [r.dice_per_class[c] for c in classes] + [r.dice], width, label=names[i], color=colors[i])
    ax_dice.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(classes) + 1)])
    ax_dice.set_xticklabels([label_names.get(c, c) for c in classes] + ["mean"])
    ax_dice.set_ylim(0, 1)
    ax_dice.set_ylabel("validation Dice (fold 0, sliding window)")
    ax_dice.legend()
    ax_dice.set_title("final validation Dice")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def run_demo(workspace: str | os.PathLike, epochs: int, iterations: int, preset: str = "demo",
             fold: int = 0) -> list[DemoResult]:
    """Generate, plan, train both trainers with the same budget, write demo_results.{md,png}."""
    from tqdm import tqdm

    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    folders = NnunetFolders.under(workspace)
    log = workspace / "demo.log"
    spec = PRESETS[preset]
    steps = tqdm(total=1 + len(DEMO_TRAINERS), desc="nnprog demo", unit="step")
    steps.set_postfix_str("generating data, nnUNetv2_plan_and_preprocess")
    dataset_name = prepare_generated_dataset(preset, DEMO_DATASET_ID, folders, log_file=log)
    dataset_folder = folders.raw / dataset_name
    steps.update()
    knobs = {"NNPROG_EPOCHS": str(epochs), "NNPROG_ITERATIONS": str(iterations), "NNPROG_VAL_ITERATIONS": "2"}
    results = []
    for trainer in DEMO_TRAINERS:
        steps.set_postfix_str(f"nnUNetv2_train -tr {trainer}")
        run = TrainingRun(str(DEMO_DATASET_ID), "3d_fullres", fold, trainer, SMALL_PLANS, knobs=knobs)
        fold_folder = run.output_folder(folders, dataset_name)
        if (fold_folder / "validation" / "summary.json").is_file():
            shutil.rmtree(fold_folder)  # a rerun trains again, so both trainers are timed alike
        wall = train(run, folders, log)
        results.append(_fold_result(trainer, fold_folder, wall))
        steps.update()
    steps.close()
    labels = json.loads((dataset_folder / "dataset.json").read_text())["labels"]
    label_names = {str(v): k for k, v in labels.items()}
    table = results_table(results, label_names)
    report = (
        f"# nnprog demo\n\n{spec.num_cases} generated cases of {'x'.join(map(str, spec.shape))} voxels "
        f"(preset `{preset}`), plans `{SMALL_PLANS}` (nnU-Net's plan with a narrower network), 3d_fullres, "
        f"fold {fold}, {epochs} epochs x {iterations} iterations for both trainers, CPU.\n\n{table}\n\n"
        f"Time ratio: PGPS Efficiency / constant patch, measured; ideal ratio: voxels processed (the schedule's "
        f"prediction). Dice: nnU-Net's final sliding-window validation on the fold's validation cases.\n"
    )
    atomic_write_text(workspace / "demo_results.md", report)
    plot_results(results, label_names, workspace / "demo_results.png")
    return results


def default_budget() -> tuple[int, int]:
    """Epochs and iterations that finish in a few minutes on 2 CPU cores (the demo's default)."""
    return 18, 12


def speedup_text(results: list[DemoResult]) -> str:
    ratio = results[1].train_seconds / results[0].train_seconds
    delta = results[1].dice - results[0].dice
    sign = "+" if delta >= 0 else "-"
    return (f"PGPS Efficiency trained in {ratio:.2f}x the time of constant-patch nnU-Net "
            f"(ideal {results[1].relative_compute:.2f}x) with a validation Dice of {results[1].dice:.3f} vs "
            f"{results[0].dice:.3f} ({sign}{abs(delta):.3f}).")

