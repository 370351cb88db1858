"""The demo: constant-patch nnU-Net vs PGPS Efficiency on generated data, same budget, on a CPU.

A short benchmark, run by the same runner as ``nnprog benchmark run``: a spec with one generated dataset (the
``demo`` preset: 64^3 CT-like volumes with one organ and small lesions), the narrow network (``nnUNetPlans_small``:
fewer features and one convolution per stage, so it trains on 2 CPU cores) and the two trainers with the same
epochs and iterations. The runner generates, plans and preprocesses the data, trains (a bar of epochs per
training), and records each run; the demo then writes wall time, validation Dice and the time ratio as a table
(``demo_results.md``) and a plot (``demo_results.png``). Runs finished by an earlier ``nnprog demo`` in the same
workspace with the same budget are reused, not trained again.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_progressive.benchmark.spec import BenchmarkSpec, parse_spec
from nnunet_progressive.core.errors import NnunetCommandError, ProgressiveConfigError
from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text
from nnunet_progressive.core.records import BenchmarkRecord
from nnunet_progressive.datasets.prepare import SMALL_PLANS

DEMO_DATASET_ID = 990
DEMO_TRAINERS = ("nnUNetTrainer_ConstantPatch", "nnUNetTrainer_PGPS_Efficiency")
DEMO_VAL_ITERATIONS = 2
# PGPS stages of the demo's plan (nnUNetPlans_small, 3d_fullres) per generated preset: PGPS Efficiency needs an
# epoch per stage, so `--epochs` is checked against this before any data is made. tests/test_benchmark_demo.py
# checks the tiny3d entry against a real run; the demo preset (64^3) plans 4 poolings of 2 per axis like tiny3d's
# 32^3 plan and grows by 16 voxels per axis step: 9 stages. Presets not listed are checked once planned.
DEMO_PGPS_STAGES: dict[str, int] = {"demo": 9, "tiny3d": 9}


@dataclass(frozen=True)
class DemoResult:
    trainer: str
    wall_seconds: float
    train_seconds: float
    dice: float
    dice_per_class: dict[str, float]
    relative_compute: float | None


def default_budget() -> tuple[int, int]:
    """Epochs and iterations that finish in a few minutes on 2 CPU cores (the demo's default)."""
    return 18, 12


def demo_spec(workspace: str | os.PathLike, epochs: int, iterations: int, preset: str = "demo",
              fold: int = 0) -> BenchmarkSpec:
    """The demo as a benchmark spec: data and results under ``workspace``, CPU, the narrow network."""
    for flag, value in (("--epochs", epochs), ("--iterations", iterations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProgressiveConfigError(f"{flag}: expected an integer >= 1, got {value!r}")
    stages = DEMO_PGPS_STAGES.get(preset)
    if stages is not None and epochs < stages:
        raise ProgressiveConfigError(
            f"--epochs {epochs} is too few: the demo's PGPS run grows its patch through {stages} stages of the "
            f"`{preset}` plan and trains at least one epoch per stage; use --epochs {stages} or more (default "
            f"{default_budget()[0]})")
    workspace = Path(workspace).resolve()
    data = {
        "results_dir": str(workspace / "results"), "nnunet_root": str(workspace),
        "executor": {"type": "local", "device": "cpu"},
        "datasets": [{"id": DEMO_DATASET_ID, "configurations": ["3d_fullres"],
                      "prepare": {"synthetic_preset": preset}}],
        "trainers": list(DEMO_TRAINERS), "folds": [fold], "seeds": [0],
        "knobs": {"NNPROG_EPOCHS": epochs, "NNPROG_ITERATIONS": iterations,
                  "NNPROG_VAL_ITERATIONS": DEMO_VAL_ITERATIONS},
        "small_network": True, "reference_trainer": DEMO_TRAINERS[0],
    }
    return parse_spec(data, workspace)


def demo_result(record: BenchmarkRecord) -> DemoResult:
    """A finished run's numbers for the demo table."""
    result = record.result
    if record.status != "done" or result is None or result.dice_mean is None or result.train_wall_seconds is None:
        raise NnunetCommandError(f"{record.trainer} did not finish (status {record.status}); see {record.log_file}"
                           + (f"\n{record.error}" if record.error else ""))
    return DemoResult(trainer=record.trainer, wall_seconds=record.runner_wall_seconds or 0.0,
                      train_seconds=result.train_wall_seconds, dice=result.dice_mean,
                      dice_per_class=dict(result.dice_per_class), relative_compute=result.ideal_time_ratio)


def results_table(results: Sequence[DemoResult], label_names: dict[str, str]) -> str:
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


def plot_results(results: Sequence[DemoResult], label_names: dict[str, str], path: Path) -> None:
    """Two panels: training time and validation Dice per class, one bar group per trainer."""
    from matplotlib.figure import Figure

    classes = sorted(results[0].dice_per_class, key=int)
    figure = Figure(figsize=(11, 4.5), layout="tight")
    ax_time, ax_dice = figure.subplots(1, 2)
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
    atomic_save_figure(figure, path, dpi=100)


def run_demo(workspace: str | os.PathLike, epochs: int, iterations: int, preset: str = "demo",
             fold: int = 0) -> list[DemoResult]:
    """Run the demo spec (generate, plan, train both trainers with the same budget), write demo_results.{md,png}."""
    from nnunet_progressive.benchmark.run import run_benchmark
    from nnunet_progressive.datasets.synthetic import PRESETS

    workspace = Path(workspace).resolve()
    spec = demo_spec(workspace, epochs, iterations, preset, fold)
    outcome = run_benchmark(spec, progress=True, schedule_fix=(
        "the demo trains at least one epoch per PGPS stage: run `nnprog demo` again with more --epochs"))
    results = [demo_result(record) for record in outcome.records]
    first = outcome.records[0].result
    label_names = dict(first.class_names) if first is not None else {}
    num_cases = len(list((workspace / "nnUNet_raw" / outcome.runs[0].dataset / "labelsTr").glob("*.nii.gz")))
    shape = f" of {'x'.join(map(str, PRESETS[preset].shape))} voxels" if preset in PRESETS else ""
    report = (
        f"# nnprog demo\n\n{num_cases} generated cases{shape} (preset `{preset}`), "
        f"plans `{SMALL_PLANS}` (nnU-Net's plan with a narrower network), 3d_fullres, fold {fold}, {epochs} epochs x "
        f"{iterations} iterations for both trainers, CPU.\n\n{results_table(results, label_names)}\n\n"
        f"Time ratio: PGPS Efficiency / constant patch, measured (sum of nnU-Net's epoch times); ideal ratio: voxels "
        f"processed (the schedule's prediction). Dice: nnU-Net's final sliding-window validation on the fold's "
        f"validation cases. Runs and logs: `{spec.results_dir}` (`nnprog benchmark report {spec.results_dir}` for "
        f"the full report); a second `nnprog demo` with the same budget reuses them.\n"
    )
    pgps = next(r for r in outcome.records if r.trainer == DEMO_TRAINERS[1])
    report += where_things_are(workspace, Path(pgps.fold_folder), outcome.runs[0].dataset,
                               outcome.runs[0].configuration, fold)
    atomic_write_text(workspace / "demo_results.md", report)
    plot_results(results, label_names, workspace / "demo_results.png")
    return results


def where_things_are(workspace: Path, model_folder: Path, dataset: str, configuration: str, fold: int) -> str:
    """The demo's nnU-Net folders, plans and PGPS model, and the commands that predict with it (markdown).

    ``model_folder``: the PGPS run's fold folder; the runner keeps each run's results under a folder of its
    settings and seed, which is the ``nnUNet_results`` to predict with (``<results>/<dataset>/<trainer>.../fold_f``).
    """
    results = model_folder.parents[2]
    raw, preprocessed = workspace / "nnUNet_raw", workspace / "nnUNet_preprocessed"
    return (
        f"\n## Where things are\n\n- nnU-Net's folders: `{raw}`, `{preprocessed}`, `{workspace / 'nnUNet_results'}` "
        f"(the models, one folder per settings and seed); the runs' records and logs under "
        f"`{workspace / 'results'}`\n- plans: `{preprocessed / dataset / (SMALL_PLANS + '.json')}` (nnU-Net's "
        f"commands need `-p {SMALL_PLANS}`)\n- PGPS model: `{model_folder}`\n\n"
        f"Predict with it in a shell with nnunet-progressive installed:\n\n```bash\n"
        f"export nnUNet_raw={raw} nnUNet_preprocessed={preprocessed} nnUNet_results={results}\n"
        f"eval \"$(nnprog env)\"\n"
        f"nnUNetv2_predict -i {raw / dataset / 'imagesTr'} -o {workspace / 'predictions'} -d {dataset} "
        f"-c {configuration} -p {SMALL_PLANS} -f {fold} -tr {DEMO_TRAINERS[1]} -device cpu\n```\n"
    )


def speedup_text(results: Sequence[DemoResult]) -> str:
    ratio = results[1].train_seconds / results[0].train_seconds
    delta = results[1].dice - results[0].dice
    sign = "+" if delta >= 0 else "-"
    ideal = f" (ideal {results[1].relative_compute:.2f}x)" if results[1].relative_compute is not None else ""
    return (f"PGPS Efficiency trained in {ratio:.2f}x the time of constant-patch nnU-Net{ideal} with a validation "
            f"Dice of {results[1].dice:.3f} vs {results[0].dice:.3f} ({sign}{abs(delta):.3f}).")
