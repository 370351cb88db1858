#!/usr/bin/env python3
"""Loader time per batch at every PGPS stage: nnU-Net's per-sample augmentation (old) vs the batched one (new).

- old (``NNPROG_AUGMENT_ON=workers``, what one loader worker does): nnU-Net's ``nnUNetDataLoader`` with the
  transforms nnU-Net builds (``nnUNetTrainer.get_training_transforms``), each sample augmented in turn;
- new (``NNPROG_AUGMENT_ON=device``): the same loader with ``transforms=None`` (load, crop the initial patch,
  stack) and the batched pipeline (``build_training_pipeline``, same arguments) on ``--device``.

Both run in this one process, batch by batch in turn (old, new, old, ...: drift on a shared machine hits both),
on a preprocessed nnU-Net dataset (``nnUNet_preprocessed`` from the environment), at each stage of the trainer's
schedule as a new run would train it (``nnprog schedule``: patch and batch per stage; Performance stages grow the
batch; augmentation keeps the planned patch's rotation and dummy-2D regime, as the PGPS trainers do). Each figure
is the mean over ``--batches`` batches after one warm-up batch per path and stage: CPU time of this process
(``time.process_time``; with ``--device cuda`` the GPU's time is not in it) and wall time (CUDA synchronised).
Writes ``augmentation_paths.md`` (the table, with the command) and ``augmentation_paths.png`` into ``--out``.

    nice -n 10 python scripts/benchmark_augmentation_paths.py -d 501 -c 3d_fullres \\
        -tr nnUNetTrainer_PGPS_Performance --batches 5 --out /tmp/augmentation_paths
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT_NAME = "augmentation_paths"


@dataclass(frozen=True)
class StageRun:
    """One stage to time: its network patch, batch and the enlarged crop the loader draws."""

    label: str
    patch_size: tuple[int, ...]
    batch_size: int
    initial_patch_size: tuple[int, ...]


@dataclass(frozen=True)
class StageTiming:
    stage: StageRun
    old_cpu_ms: float
    new_cpu_ms: float
    old_wall_ms: float
    new_wall_ms: float

    @property
    def cpu_ratio(self) -> float:
        """new / old CPU time per batch (below 1: the batched path costs the loader less)."""
        return self.new_cpu_ms / self.old_cpu_ms


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id (preprocessed)")
    parser.add_argument("-c", "--configuration", required=True, help="e.g. 3d_fullres or 2d")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainer_PGPS_Performance",
                        help="trainer whose schedule gives the stages (a trainer without stages: the planned patch)")
    parser.add_argument("--device", default="cpu", help="where the batched pipeline runs: cpu or cuda[:i]")
    parser.add_argument("--batches", type=int, default=5, help="timed batches per path and stage (default 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of this process (default 1, as one nnU-Net loader worker)")
    parser.add_argument("--oversample", type=float, default=0.33, help="nnU-Net's foreground oversampling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=OUTPUT_NAME, help=f"output folder (default ./{OUTPUT_NAME})")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    return args


# ---- pure helpers -------------------------------------------------------------------------------------------------
def size_text(size: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in size)


def markdown_table(timings: Sequence[StageTiming]) -> str:
    lines = ["| stage | patch | batch | initial patch | old ms/batch (CPU) | new ms/batch (CPU) | new / old "
             "| old ms/batch (wall) | new ms/batch (wall) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in timings:
        lines.append(f"| {t.stage.label} | {size_text(t.stage.patch_size)} | {t.stage.batch_size} | "
                     f"{size_text(t.stage.initial_patch_size)} | {t.old_cpu_ms:.1f} | {t.new_cpu_ms:.1f} | "
                     f"{t.cpu_ratio:.2f} | {t.old_wall_ms:.1f} | {t.new_wall_ms:.1f} |")
    return "\n".join(lines) + "\n"


def report_text(timings: Sequence[StageTiming], command: str, setting: str) -> str:
    return (f"# Loader time per batch, nnU-Net's per-sample augmentation (old) vs batched (new)\n\n"
            f"`{command}`\n\n{setting}\n\n{markdown_table(timings)}")


def plot(timings: Sequence[StageTiming], title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_progressive.core.io import atomic_save_figure

    labels = [f"{t.stage.label}\n{size_text(t.stage.patch_size)}\nx{t.stage.batch_size}" for t in timings]
    x = list(range(len(timings)))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 1.1 * len(timings) + 2), 7), sharex=True,
                                         gridspec_kw={"height_ratios": [2, 1]})
    top.plot(x, [t.old_cpu_ms for t in timings], "o-", label="old: nnU-Net per sample (CPU)")
    top.plot(x, [t.new_cpu_ms for t in timings], "s-", label="new: load + batched pipeline (CPU)")
    top.set_yscale("log")
    top.set_ylabel("ms per batch")
    top.set_title(title, fontsize=10)
    top.legend()
    top.grid(True, which="both", alpha=0.3)
    bottom.bar(x, [t.cpu_ratio for t in timings], color="tab:gray")
    bottom.axhline(1.0, color="black", linewidth=0.8)
    bottom.set_ylabel("new / old (CPU)")
    bottom.set_xticks(x)
    bottom.set_xticklabels(labels, fontsize=7)
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=120)
    plt.close(figure)


# ---- nnU-Net side -------------------------------------------------------------------------------------------------
def stage_runs(trainer_class: type, planned: Any) -> tuple[list[StageRun], dict[str, Any]]:
    """The stages to time and the arguments of ``get_training_transforms`` shared by all stages (all but the
    patch): the planned patch's rotation, dummy-2D regime and mirror axes, deep supervision from the plan."""
    import numpy as np
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.hooks.pgps import _initial_patch_size, schedule_of_new_run

    manager = planned.configuration_manager
    planned_trainer = types.SimpleNamespace(configuration_manager=manager, enable_deep_supervision=True,
                                            print_to_log_file=lambda *args, **kwargs: None)
    rotation, dummy_2d, _, mirror_axes = \
        nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size(planned_trainer)
    deep_supervision = nnUNetTrainer._get_deep_supervision_scales(planned_trainer)
    schedule = schedule_of_new_run(trainer_class, planned)
    if schedule is None:
        stages = [("planned", tuple(manager.patch_size), int(manager.batch_size))]
    else:
        stages = [(str(stage.index + 1), tuple(stage.patch_size), int(stage.batch_size)) for stage in schedule.stages]
    runs = [StageRun(label, patch, batch, tuple(_initial_patch_size(list(patch), rotation, dummy_2d)))
            for label, patch, batch in stages]
    shared = dict(rotation_for_DA=rotation, deep_supervision_scales=deep_supervision,
                  mirror_axes=tuple(int(a) for a in np.atleast_1d(mirror_axes)), do_dummy_2d_data_aug=dummy_2d)
    return runs, shared


def label_arguments(planned: Any) -> tuple[dict[str, Any], Any]:
    """The label part of ``get_training_transforms``'s arguments, as nnU-Net's trainer passes them, and the
    label manager."""
    import json

    dataset_json = json.loads((planned.preprocessed_dataset_folder / "dataset.json").read_text())
    label_manager = planned.plans_manager.get_label_manager(dataset_json)
    return dict(use_mask_for_norm=planned.configuration_manager.use_mask_for_norm, is_cascaded=False,
                foreground_labels=label_manager.foreground_labels,
                regions=label_manager.foreground_regions if label_manager.has_regions else None,
                ignore_label=label_manager.ignore_label), label_manager


def time_stage(run: StageRun, dataset: Any, label_manager: Any, transform_arguments: dict[str, Any],
               device: Any, batches: int, oversample: float, tick: Callable[[], None]) -> StageTiming:
    import torch
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_progressive.nnunet.batched_augmentation.pipeline import build_training_pipeline

    arguments = dict(transform_arguments, patch_size=run.patch_size)

    def loader(transforms: Any) -> nnUNetDataLoader:
        return nnUNetDataLoader(dataset, run.batch_size, run.initial_patch_size, run.patch_size, label_manager,
                                oversample_foreground_percent=oversample, transforms=transforms)

    old_loader = loader(nnUNetTrainer.get_training_transforms(**arguments))
    new_loader = loader(None)
    pipeline = build_training_pipeline(**arguments)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def old_batch() -> None:
        old_loader.generate_train_batch()

    def new_batch() -> None:
        batch = new_loader.generate_train_batch()
        data = batch["data"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        with torch.no_grad():
            pipeline({"image": data, "segmentation": target})
        synchronize()

    old_batch()  # warm-up: first reads, kernel choices, grids
    new_batch()
    totals = {"old": [0.0, 0.0], "new": [0.0, 0.0]}
    for _ in range(batches):
        for name, make in (("old", old_batch), ("new", new_batch)):
            cpu, wall = time.process_time(), time.perf_counter()
            make()
            totals[name][0] += time.process_time() - cpu
            totals[name][1] += time.perf_counter() - wall
            tick()
    per_batch = {name: [1000 * v / batches for v in values] for name, values in totals.items()}
    return StageTiming(run, per_batch["old"][0], per_batch["new"][0], per_batch["old"][1], per_batch["new"][1])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from nnunet_progressive.core.errors import NnprogError, ProgressiveConfigError
    from nnunet_progressive.core.io import atomic_write_text, check_writable

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_writable(out / f"{OUTPUT_NAME}.md", "--out")
        import numpy as np
        import torch
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
        from tqdm import tqdm

        from nnunet_progressive.nnunet.hooks.augmentation_placement import DEVICE, transforms_refusal
        from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
        from nnunet_progressive.nnunet.resolve import resolve_configuration

        planned = resolve_configuration(args.dataset, args.configuration, args.plans)
        folder = planned.require_preprocessed()
        if planned.configuration_manager.previous_stage_name is not None:
            raise ProgressiveConfigError(f"{args.configuration} is a cascade stage; this benchmark loads no "
                                         f"previous-stage segmentations. Pick a configuration without one")
        trainer_class = find_trainer_class(args.trainer)
        refusal = transforms_refusal(trainer_class, DEVICE)
        if refusal is not None:
            raise ProgressiveConfigError(refusal)
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ProgressiveConfigError(f"--device {args.device}: CUDA is not available here; use --device cpu")
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        np.random.seed(args.seed)

        runs, shared = stage_runs(trainer_class, planned)
        labels, label_manager = label_arguments(planned)
        dataset = infer_dataset_class(str(folder))(str(folder))
        transform_arguments = {**shared, **labels}
        timings = []
        try:
            with tqdm(total=len(runs) * 2 * args.batches, desc="batches", unit="batch") as progress:
                for run in runs:
                    progress.set_postfix_str(f"stage {run.label}: {size_text(run.patch_size)} x{run.batch_size}")
                    timings.append(time_stage(run, dataset, label_manager, transform_arguments, device,
                                              args.batches, args.oversample, progress.update))
        finally:
            torch.set_num_threads(threads)
    except (NnprogError, OSError) as error:
        print(f"benchmark_augmentation_paths: {error}", file=sys.stderr)
        return 2

    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    setting = (f"{planned.dataset_name} {args.configuration} ({args.plans}), stages of {args.trainer}; batched "
               f"pipeline on {args.device}; {args.threads} torch thread(s); mean of {args.batches} batches per path "
               f"and stage after one warm-up; CPU = this process's CPU time.")
    atomic_write_text(out / f"{OUTPUT_NAME}.md", report_text(timings, command, setting))
    plot(timings, f"{planned.dataset_name} {args.configuration}, {args.trainer}, batched on {args.device}",
         out / f"{OUTPUT_NAME}.png")
    print(markdown_table(timings))
    total_old = sum(t.old_cpu_ms for t in timings)
    total_new = sum(t.new_cpu_ms for t in timings)
    print(f"sum over stages: old {total_old:.0f} ms, new {total_new:.0f} ms (new / old "
          f"{total_new / total_old if total_old else math.nan:.2f}); written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
