#!/usr/bin/env python3
"""Loader benchmark: batches/s and voxels/s of PGPS Performance's training loader at every stage, old vs new path.

- old path: nnU-Net's own ``nnUNetDataLoader`` at the stage's batch: every crop from its own case (one case
  load and one foreground decision per sample), as this package loaded Performance batches before;
- new path: :class:`PatchCropLoader`: the planned number of cases per batch, several crops from each
  (the published 2025 batching).

Both run inside nnU-Net's ``NonDetMultiThreadedAugmenter`` with ``--workers`` worker processes, with the
transforms nnU-Net builds for the stage (the trainer's own ``get_training_transforms``), on generated CT-like
data planned and preprocessed by nnU-Net. Plans (the patch sizes, batches and strides are set on nnU-Net's
plan of the generated data; the network is never run):

- ``iso128``: patch 128^3, batch 2, strides 2 on every axis (total 32): 9 stages from 64x32x32;
- ``aniso``: patch 32x224x224, batch 2, total strides 8x32x32: 15 stages from 8x64x32.

Each stage times each path ``--repeats`` times in the order old, new, new, old (drift cancels), ``--batches``
batches each; the table gives the rates over all repeats and their spread (max / min of one path's repeats: the
timing noise, against which a new / old ratio has to be read). Writes ``<workspace>/loader_benchmark.{csv,md,png}``
(the CSV holds every repeat). Timing needs an idle machine; ``--quick`` is a smoke test
(small data, a small plan, few batches) whose numbers mean nothing.

    python scripts/benchmark_loader.py --workspace benchmark_runs/loader            # the figure (about 11 min)
    python scripts/benchmark_loader.py --workspace /tmp/loader_smoke --quick        # smoke test (about 2 min)
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

DATASET_ID = 992


@dataclass(frozen=True)
class LoaderPlan:
    """A plan to benchmark: patch, batch, per-stage strides, and the generated cases it needs."""

    name: str
    patch_size: tuple[int, ...]
    batch_size: int
    strides: tuple[tuple[int, ...], ...]


PLANS = {
    "iso128": LoaderPlan("iso128", (128, 128, 128), 2, ((1, 1, 1),) + ((2, 2, 2),) * 5),
    "aniso": LoaderPlan("aniso", (32, 224, 224), 2,
                        ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))),
    "quick": LoaderPlan("quick", (32, 32, 32), 2, ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))),
}
# generated CT-like data at 1 mm, large enough to hold both plans' patches (160x256x256 voxels per case;
# about 3 min to generate and 3 min to preprocess on 2 cores, once per workspace)
FULL_DATA = {"shape": (160, 256, 256), "spacing": (1.0, 1.0, 1.0), "num_cases": 8}
QUICK_DATA = {"shape": (48, 48, 48), "spacing": (1.0, 1.0, 1.0), "num_cases": 6}


def prepare(workspace: Path, quick: bool) -> tuple[object, str]:
    """Generate, plan and preprocess the data once (kept across runs)."""
    from nnunet_progressive.datasets.prepare import plan_and_preprocess
    from nnunet_progressive.datasets.synthetic import write_preset
    from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

    folders = NnunetFolders.under(workspace)
    data = QUICK_DATA if quick else FULL_DATA
    name = "NNProgLoaderQuick" if quick else "NNProgLoader"
    dataset_name = f"Dataset{DATASET_ID}_{name}"
    if not (folders.preprocessed / dataset_name / "nnUNetPlans.json").is_file():
        write_preset("demo", folders.raw, DATASET_ID, overwrite=True, name=name, **data)
        plan_and_preprocess(DATASET_ID, folders, ("3d_fullres",), num_processes=2,
                            log_file=workspace / "preprocess.log")
    return folders, dataset_name


def plans_for(base: dict, plan: LoaderPlan) -> dict:
    """nnU-Net's plans of the generated data with ``plan``'s patch, batch and strides (consistent network)."""
    plans = copy.deepcopy(base)
    plans["plans_name"] = f"nnUNetPlans_loader_{plan.name}"
    configuration = plans["configurations"]["3d_fullres"]
    stages = len(plan.strides)
    configuration["patch_size"] = list(plan.patch_size)
    configuration["batch_size"] = plan.batch_size
    kwargs = configuration["architecture"]["arch_kwargs"]
    kwargs.update(n_stages=stages, features_per_stage=[min(32 * 2**s, 320) for s in range(stages)],
                  kernel_sizes=[[3, 3, 3]] * stages, strides=[list(s) for s in plan.strides],
                  n_conv_per_stage=[2] * stages, n_conv_per_stage_decoder=[2] * (stages - 1))
    return plans


def make_trainer(folders, dataset_name: str, plans: dict):
    import torch

    from nnunet_progressive_trainers.nnprog_pgps import nnUNetTrainer_PGPS_Performance

    dataset_json = json.loads((folders.preprocessed / dataset_name / "dataset.json").read_text())
    plans = {**plans, "continue_training": False}
    trainer = nnUNetTrainer_PGPS_Performance(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    return trainer


def measure(augmenter, batches: int, cached: int) -> tuple[float, int, int]:
    """Seconds for ``batches`` batches once the prefilled cache is drained; samples and voxels per batch."""
    for _ in range(cached):
        next(augmenter)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(augmenter)
    seconds = time.perf_counter() - start
    shape = batch["data"].shape
    return seconds, int(shape[0]), int(shape[0] * math.prod(shape[2:]))


def run(workspace: Path, plan_names: list[str], batches: int, workers: int, quick: bool,
        repeats: int = 2) -> list[dict]:
    from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

    os.environ["nnUNet_n_proc_DA"] = str(workers)
    os.environ.update(NnunetFolders.under(workspace).environment({}))  # before nnU-Net reads its paths
    folders, dataset_name = prepare(workspace, quick)
    from nnunet_progressive.nnunet.hooks.loaders import shutdown_augmenter, training_augmenter, training_loader

    base = json.loads((folders.preprocessed / dataset_name / "nnUNetPlans.json").read_text())
    rows = []
    for name in plan_names:
        plan = PLANS[name]
        trainer = make_trainer(folders, dataset_name, plans_for(base, plan))
        stages = trainer.schedule.stages
        for stage in tqdm(stages, desc=f"{name}: stages", unit="stage"):
            # old, new, new, old, ...: drift of the machine over a stage cancels; two timings of one path show noise
            order = [("old", "new") if r % 2 == 0 else ("new", "old") for r in range(repeats)]
            for repeat, path in ((r, path) for r, pair in enumerate(order) for path in pair):
                with trainer._stage_configuration(stage.patch_size, stage.batch_size):
                    layout = trainer._batch_layout
                    loader = training_loader(trainer, layout if path == "new" else None)
                augmenter = training_augmenter(trainer, loader)
                try:
                    seconds, samples, voxels = measure(augmenter, batches, cached=max(6, workers // 2))
                finally:
                    shutdown_augmenter(augmenter)
                rows.append({
                    "plan": name, "stage": stage.index, "patch": "x".join(map(str, stage.patch_size)),
                    "batch": stage.batch_size, "path": path, "repeat": repeat,
                    "cases_per_batch": layout.cases_per_batch if path == "new" else stage.batch_size,
                    "workers": workers, "batches": batches, "samples_per_batch": samples,
                    "voxels_per_batch": voxels, "seconds": round(seconds, 3),
                    "batches_per_second": round(batches / seconds, 3),
                    "samples_per_second": round(batches * samples / seconds, 1),
                    "voxels_per_second": round(batches * voxels / seconds, 1),
                })
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """One row per plan, stage and path: rates over all repeats (total batches / total seconds) and the spread of
    the repeats (max / min of their batches per second: the timing noise of that measurement)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["plan"], row["stage"], row["path"]), []).append(row)
    summary = []
    for group in groups.values():
        seconds = sum(r["seconds"] for r in group)
        batches = sum(r["batches"] for r in group)
        rates = [r["batches_per_second"] for r in group]
        per_batch = group[0]["voxels_per_batch"]
        summary.append({**{k: group[0][k] for k in ("plan", "stage", "patch", "batch", "path", "cases_per_batch",
                                                     "workers")},
                        "repeats": len(group), "batches_per_second": batches / seconds,
                        "voxels_per_second": batches * per_batch / seconds, "spread": max(rates) / min(rates)})
    return summary


def write_outputs(rows: list[dict], workspace: Path) -> None:
    from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text

    csv_path = workspace / "loader_benchmark.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    by_key = {(r["plan"], r["stage"], r["path"]): r for r in summary}
    lines = ["| plan | stage | patch | batch | cases/batch old -> new | batches/s old | batches/s new | "
             "Mvoxels/s old | Mvoxels/s new | new / old | repeat spread old, new |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (plan, stage, path), new in by_key.items():
        if path != "new":
            continue
        old = by_key[(plan, stage, "old")]
        lines.append(
            f"| {plan} | {stage} | {new['patch']} | {new['batch']} | {old['cases_per_batch']} -> "
            f"{new['cases_per_batch']} | {old['batches_per_second']:.2f} | {new['batches_per_second']:.2f} | "
            f"{old['voxels_per_second'] / 1e6:.2f} | {new['voxels_per_second'] / 1e6:.2f} | "
            f"{new['voxels_per_second'] / old['voxels_per_second']:.2f} | "
            f"{old['spread']:.2f}, {new['spread']:.2f} |")
    atomic_write_text(workspace / "loader_benchmark.md", "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    plans = sorted({r["plan"] for r in rows}, key=list(PLANS).index)
    with plt.style.context("default"):
        fig, axes = plt.subplots(2, len(plans), figsize=(6 * len(plans), 7), squeeze=False)
        for column, plan in enumerate(plans):
            for path, style in (("old", "o--"), ("new", "s-")):
                picked = [r for r in summary if r["plan"] == plan and r["path"] == path]
                label = ("old: every crop its own case" if path == "old" else "new: planned cases x crops")
                axes[0][column].plot([r["stage"] for r in picked], [r["voxels_per_second"] / 1e6 for r in picked],
                                     style, label=label)
                axes[1][column].plot([r["stage"] for r in picked], [r["batches_per_second"] for r in picked],
                                     style, label=label)
            axes[0][column].set_title(f"{plan}: patch {'x'.join(map(str, PLANS[plan].patch_size))}, "
                                      f"batch {PLANS[plan].batch_size}, {rows[0]['workers']} workers")
            axes[0][column].set_ylabel("loader Mvoxels/s")
            axes[1][column].set_ylabel("loader batches/s")
            axes[1][column].set_xlabel("PGPS stage (Performance batch)")
            for ax in axes[:, column]:
                ax.set_yscale("log")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_save_figure(fig, workspace / "loader_benchmark.png", dpi=100)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--plans", default="iso128,aniso", help=f"comma-separated, of {sorted(PLANS)}")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per stage, path and repeat")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timings per stage and path (1 or even), in the order old, new, new, old, ...")
    parser.add_argument("--workers", type=int, default=2, help="data-augmentation worker processes")
    parser.add_argument("--quick", action="store_true", help="smoke test: small data, plan 'quick', 2 batches")
    args = parser.parse_args(argv)
    plan_names = ["quick"] if args.quick else [p.strip() for p in args.plans.split(",") if p.strip()]
    unknown = [p for p in plan_names if p not in PLANS]
    if unknown:
        parser.error(f"unknown plans {unknown}; choose from {sorted(PLANS)}")
    args.workspace.mkdir(parents=True, exist_ok=True)
    if args.batches < 1 or args.repeats < 1 or (args.repeats > 1 and args.repeats % 2):
        parser.error("--batches must be at least 1 and --repeats 1 or even (old, new, new, old cancels drift in pairs)")
    rows = run(args.workspace.resolve(), plan_names, 2 if args.quick else args.batches, args.workers, args.quick,
               args.repeats)
    write_outputs(rows, args.workspace)
    print((args.workspace / "loader_benchmark.md").read_text())
    print(f"CSV, table and plot in {args.workspace}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
