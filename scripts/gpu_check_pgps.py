#!/usr/bin/env python3
"""GPU check of PGPS (under 10 minutes): a few training iterations at each selected stage of a default plan.

Per stage it records the peak GPU memory of the training iterations (and the activation estimate of
``nnunet_progressive.architectures.memory`` for the planned network), the loader's and the network's
samples and voxels per second and the share of time the training process waited for batches (from the
trainer's own counters, as in curriculum.json), and how many graphs torch.compile built (dynamo's counters).
It then stops the stage's loader and times the same number of steps on one batch used again: the network's own
step time, which no data path can beat. With ``--stages all`` it weighs both step times by the schedule's
epochs into the run's time relative to constant patch, next to the voxel ideal ``nnprog schedule`` shows:
what this device makes of the plan's small stages, and what the loader adds (on a CPU the loader's workers
share the network's cores, so it adds there even when the step never waits for a batch).
nnU-Net's defaults otherwise: its planned network, mixed precision, torch.compile on CUDA, ``--workers``
data-augmentation processes.

Data: a generated CT-like dataset (``--cases``, default 10, of 144^3 at 1 mm; nnU-Net's default 3d_fullres
plan: 128^3 at batch 2) planned and preprocessed here (about 15 s a case on 2 cores), or an existing
preprocessed dataset with ``--dataset``.

    python scripts/gpu_check_pgps.py --workspace gpu_check                           # 3 stages, compiled
    python scripts/gpu_check_pgps.py --workspace gpu_check --stages all --no-compile  # every stage, eager
    python scripts/gpu_check_pgps.py --workspace /tmp/gpu_smoke --quick               # CPU smoke test
    python scripts/gpu_check_pgps.py --workspace w --dataset 531 --plans nnUNetPlans_small \
        --device cpu --workers 2 --no-compile --iterations 20 --stages all             # a planned dataset, CPU

Compiling costs about a minute per stage shape on a GPU, so the default runs the first, middle and last
stage; ``--budget-minutes`` stops starting stages that many minutes after the script started (data
preparation included). The planned (last) stage, when selected, runs first: it is the reference of the
memory ratios. Writes ``<workspace>/gpu_check.{json,csv,md,png}``, rewritten after every stage (a run cut
short keeps what it measured).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

DATASET_ID = 993
GENERATED = {"shape": (144, 144, 144), "spacing": (1.0, 1.0, 1.0), "num_cases": 10}
QUICK = {"shape": (48, 48, 48), "spacing": (1.0, 1.0, 1.0), "num_cases": 6}


def select_stages(spec: str, count: int) -> list[int]:
    """Stage indices from ``all``, ``first,middle,last`` or ``0,3,8``."""
    named = {"first": 0, "middle": count // 2, "last": count - 1}
    if spec == "all":
        return list(range(count))
    picked = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        index = named[part] if part in named else int(part)
        if not 0 <= index < count:
            raise SystemExit(f"stage {index} does not exist: the schedule has {count} stages (0-{count - 1})")
        if index not in picked:
            picked.append(index)
    return sorted(picked)


def prepare(workspace: Path, quick: bool, processes: int, cases: int | None = None):
    from nnunet_progressive.datasets.prepare import plan_and_preprocess, write_small_plans
    from nnunet_progressive.datasets.synthetic import write_preset
    from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

    folders = NnunetFolders.under(workspace)
    name = "NNProgGpuQuick" if quick else "NNProgGpuCheck"
    dataset_name = f"Dataset{DATASET_ID}_{name}"
    plans_file = folders.preprocessed / dataset_name / "nnUNetPlans.json"
    if not plans_file.is_file():
        spec = dict(QUICK if quick else GENERATED)
        if cases is not None:
            spec["num_cases"] = cases
        write_preset("demo", folders.raw, DATASET_ID, overwrite=True, name=name, **spec)
        plan_and_preprocess(DATASET_ID, folders, ("3d_fullres",), num_processes=processes,
                            log_file=workspace / "preprocess.log")
    if quick:
        write_small_plans(plans_file, ("3d_fullres",))
    return folders, dataset_name


def dynamo_graphs() -> int:
    """Graphs torch.compile (dynamo) has captured so far in this process."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["stats"].get("unique_graphs", 0))


def run_order(indices: list[int], count: int) -> list[int]:
    """The planned (last) stage first when it is selected (the reference of the memory ratios), then the rest."""
    return [count - 1] + [i for i in indices if i != count - 1] if count - 1 in indices else list(indices)


def check(args: argparse.Namespace, script_start: float, workspace: Path) -> dict:
    import torch

    from nnunet_progressive.architectures.memory import (
        BYTES_FLOAT16,
        BYTES_FLOAT32,
        activation_bytes,
        conv_unet_from_plan,
    )
    from nnunet_progressive.core.errors import ProgressiveConfigError
    from nnunet_progressive.nnunet.hooks.loaders import loader_workers, shutdown_augmenter
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class
    from nnunet_progressive.nnunet.resolve import resolve_configuration
    from nnunet_progressive.pgps.throughput import Throughput

    device = torch.device(args.device)
    planned = resolve_configuration(args.dataset, args.configuration, args.plans)
    plans = {**json.loads(Path(planned.plans_file).read_text()), "continue_training": False}
    dataset_json = json.loads((planned.preprocessed_dataset_folder / "dataset.json").read_text())
    trainer = find_trainer_class(args.trainer)(plans, args.configuration, 0, dataset_json, device)
    trainer.initialize()
    trainer.on_train_start()
    network = None
    try:
        network = conv_unet_from_plan(plans["configurations"][args.configuration]["architecture"],
                                      len(dataset_json["channel_names"]))
    except ProgressiveConfigError as error:  # a network the estimate does not cover: report without it
        print(f"no activation estimate: {error}")
    element_bytes = BYTES_FLOAT16 if device.type == "cuda" else BYTES_FLOAT32
    stages = trainer.schedule.stages
    start_time = time.perf_counter()
    rows = []
    result = {
        "trainer": args.trainer, "dataset": args.dataset, "configuration": args.configuration, "plans": args.plans,
        "device": str(device), "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_version": torch.__version__, "workers": int(os.environ["nnUNet_n_proc_DA"]),
        "compile": bool(trainer._do_i_compile()), "planned_patch_size": list(trainer.schedule.planned_patch_size),
        "planned_batch_size": trainer.schedule.planned_batch_size, "num_stages": len(stages),
        "seconds": 0.0, "stages": rows,
    }
    try:
        for index in run_order(select_stages(args.stages, len(stages)), len(stages)):
            stage = stages[index]
            row = {"stage": index, "patch": "x".join(map(str, stage.patch_size)), "batch": stage.batch_size}
            if time.perf_counter() - script_start > 60 * args.budget_minutes:
                rows.append({**row, "skipped": "time budget"})
                continue
            trainer.current_epoch = stage.first_epoch
            trainer.on_epoch_start()
            trainer.on_train_epoch_start()  # builds the stage's loader
            graphs_before = dynamo_graphs()
            warm_start = time.perf_counter()
            for _ in range(args.warmup):  # the first step compiles this shape
                trainer.train_step(next(trainer.dataloader_train))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            warmup_seconds = time.perf_counter() - warm_start
            # drop the batches built ahead (batchgenerators' NonDetMultiThreadedAugmenter: the workers' queue and the
            # pin-memory thread's, num_cached each, one in that thread, one in hand per worker): the timed steps
            # then wait for batches as a long run does, instead of being served from the queues
            cached = getattr(trainer.dataloader_train, "num_cached", 0)
            ahead = 2 * cached + 1 + loader_workers(trainer.dataloader_train) if cached else 0
            for _ in range(ahead):
                next(trainer.dataloader_train)
            trainer._epoch_throughput = Throughput(workers=loader_workers(trainer.dataloader_train))
            trainer._last_step_end = time.perf_counter()
            for _ in range(args.iterations):
                trainer.train_step(next(trainer.dataloader_train))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            throughput = trainer._epoch_throughput
            network_only = network_only_seconds(trainer, args.iterations, device)
            rank_batch = trainer._active_layout.batch_size if trainer._active_layout else stage.batch_size
            estimate = (activation_bytes(network, stage.patch_size, rank_batch, element_bytes)
                        if network is not None else None)
            rows.append({
                **row, "layout": trainer._layout_text(), "iterations": args.iterations,
                "warmup_seconds": round(warmup_seconds, 2),
                "compile_graphs_new": dynamo_graphs() - graphs_before, "compile_graphs_total": dynamo_graphs(),
                "peak_gpu_memory_bytes": (int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda"
                                          else None),
                "activation_estimate_bytes": estimate,
                "seconds_per_iteration": round((throughput.wait_seconds + throughput.step_seconds)
                                               / max(throughput.iterations, 1), 5),
                "network_only_seconds_per_iteration": round(network_only, 5),
                **throughput.summary(),
            })
            print(json.dumps(rows[-1]), flush=True)
            result["seconds"] = round(time.perf_counter() - start_time, 1)
            write_outputs(result, workspace)
    finally:
        shutdown_augmenter(trainer.dataloader_train)
        shutdown_augmenter(trainer.dataloader_val)
    result["seconds"] = round(time.perf_counter() - start_time, 1)
    result["time_ratios"] = time_ratios(trainer.schedule, rows)
    return result


def network_only_seconds(trainer, iterations: int, device) -> float:
    """Seconds per training step of this stage's network on one batch used again and again, its loader stopped
    first: the step time no data path can beat (on a CPU, the loader's workers no longer share its cores)."""
    import torch

    from nnunet_progressive.nnunet.hooks.loaders import shutdown_augmenter

    batch = next(trainer.dataloader_train)
    shutdown_augmenter(trainer.dataloader_train)
    trainer.train_step(dict(batch))  # untimed: lets the stopped workers' last writes and frees settle first
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        trainer.train_step(dict(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / iterations


def time_ratios(schedule, rows: list[dict]) -> dict | None:
    """The run's time relative to constant patch: from voxels (``nnprog schedule``'s ideal), from the network's
    own step times, and from the step times with the loader; None unless every stage was measured and the last
    one is the planned patch and batch (the constant-patch reference)."""
    measured = {r["stage"]: r for r in rows if "skipped" not in r}
    last = schedule.stages[-1]
    planned = (tuple(schedule.planned_patch_size), schedule.planned_batch_size)
    if len(measured) != len(schedule.stages) or (tuple(last.patch_size), last.batch_size) != planned:
        return None
    ratios = {"voxels": round(schedule.relative_compute(), 4)}
    for name, key in (("network_only", "network_only_seconds_per_iteration"),
                      ("with_loader", "seconds_per_iteration")):
        seconds = {index: row[key] for index, row in measured.items()}
        ratios[name] = round(schedule.relative_time(seconds, seconds[last.index]), 4)
    return ratios


def write_outputs(result: dict, workspace: Path) -> None:
    from nnunet_progressive.core.io import atomic_save_figure, atomic_write_json, atomic_write_text

    atomic_write_json(workspace / "gpu_check.json", result)
    rows = sorted((r for r in result["stages"] if "skipped" not in r), key=lambda r: r["stage"])
    if not rows:
        return
    planned = next((r for r in rows if r["stage"] == result["num_stages"] - 1), None)
    with open(workspace / "gpu_check.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def gib(value):
        return "n/a" if value is None else f"{value / 2**30:.2f}"

    def mega(value):
        return "n/a" if value is None else f"{value / 1e6:.2f}"

    def ratio(row, key):
        if planned is None or not row.get(key) or not planned.get(key):
            return "n/a"
        return f"{row[key] / planned[key]:.2f}"

    lines = [f"{result['trainer']} on {result['dataset']} {result['configuration']} ({result['plans']}), "
             f"{result['device']} {result['gpu_name'] or ''}, {result['workers']} workers, compile "
             f"{result['compile']}, {result['num_stages']} stages, {result['seconds']} s", "",
             "Peak: `torch.cuda.max_memory_allocated` over the timed iterations (weights and optimiser state "
             "included); ratios are to the planned (last) stage's.", "",
             "| stage | patch | batch | layout | peak GiB | peak / planned | activations GiB (est.) | est. / planned | "
             "loader Mvox/s | network Mvox/s | waited | s/iteration | network only | graphs (new/total) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(result["stages"], key=lambda r: r["stage"]):
        if "skipped" in r:
            lines.append(f"| {r['stage']} | {r['patch']} | {r['batch']} | skipped ({r['skipped']}) |" + " |" * 10)
            continue
        waited = "n/a" if r["wait_share"] is None else f"{100 * r['wait_share']:.0f}%"
        lines.append(f"| {r['stage']} | {r['patch']} | {r['batch']} | {r['layout']} | "
                     f"{gib(r['peak_gpu_memory_bytes'])} | {ratio(r, 'peak_gpu_memory_bytes')} | "
                     f"{gib(r['activation_estimate_bytes'])} | {ratio(r, 'activation_estimate_bytes')} | "
                     f"{mega(r['loader_voxels_per_second'])} | "
                     f"{mega(r['network_voxels_per_second'])} | {waited} | {r['seconds_per_iteration']:.4f} | "
                     f"{r['network_only_seconds_per_iteration']:.4f} | {r['compile_graphs_new']}/"
                     f"{r['compile_graphs_total']} |")
    ratios = result.get("time_ratios")
    if ratios:
        lines += ["", f"Time relative to constant patch over the schedule: {ratios['voxels']:.3f} from voxels (ideal), "
                      f"{ratios['network_only']:.3f} from the network's own step times (loader stopped), "
                      f"{ratios['with_loader']:.3f} from the step times with the loader running."]
    atomic_write_text(workspace / "gpu_check.md", "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        fig, (ax_memory, ax_rate) = plt.subplots(1, 2, figsize=(12, 4.5))
        stages = [r["stage"] for r in rows]
        if any(r["peak_gpu_memory_bytes"] for r in rows):
            ax_memory.plot(stages, [r["peak_gpu_memory_bytes"] / 2**30 for r in rows], "o-", label="peak GPU memory")
        if any(r["activation_estimate_bytes"] for r in rows):
            ax_memory.plot(stages, [(r["activation_estimate_bytes"] or 0) / 2**30 for r in rows], "s--",
                           label="activations (estimate)")
        ax_memory.set_xlabel("PGPS stage")
        ax_memory.set_ylabel("GiB")
        ax_memory.set_ylim(bottom=0)
        ax_memory.legend()
        ax_rate.plot(stages, [(r["loader_voxels_per_second"] or 0) / 1e6 for r in rows], "o-", label="loader")
        ax_rate.plot(stages, [(r["network_voxels_per_second"] or 0) / 1e6 for r in rows], "s-", label="network")
        ax_rate.set_xlabel("PGPS stage")
        ax_rate.set_ylabel("Mvoxels/s")
        ax_rate.set_yscale("log")
        ax_rate.legend()
        fig.suptitle(f"{result['trainer']}, {result['workers']} workers, {result['gpu_name'] or result['device']}")
        fig.tight_layout()
        atomic_save_figure(fig, workspace / "gpu_check.png", dpi=100)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--dataset", default=None, help="an existing preprocessed dataset (default: generate one)")
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--plans", default=None, help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--trainer", default="nnUNetTrainer_PGPS_Performance")
    parser.add_argument("--workers", type=int, default=12, help="nnUNet_n_proc_DA")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per stage")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per stage (compilation)")
    parser.add_argument("--stages", default="first,middle,last", help="'all', or indices/first/middle/last")
    parser.add_argument("--budget-minutes", type=float, default=8.0,
                        help="start no stage this many minutes after the script started")
    parser.add_argument("--cases", type=int, default=None,
                        help=f"cases of the generated dataset (default {GENERATED['num_cases']}; --quick: "
                             f"{QUICK['num_cases']})")
    parser.add_argument("--no-compile", action="store_true", help="eager mode (nnUNet_compile=false)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test on the CPU: small generated data, small network, 2 workers, 2 iterations")
    args = parser.parse_args(argv)
    script_start = time.perf_counter()
    if args.cases is not None and args.cases < 5:
        parser.error(f"--cases {args.cases}: nnU-Net's 5-fold split needs at least 5 cases")
    if args.quick:
        args.device, args.workers, args.iterations, args.warmup = "cpu", 2, 2, 1
    workspace = args.workspace.resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    os.environ["nnUNet_n_proc_DA"] = str(args.workers)
    os.environ["nnUNet_compile"] = "false" if args.no_compile else "true"
    os.environ.setdefault("NNPROG_EPOCHS", "1000")
    if args.dataset is None:
        from nnunet_progressive.nnunet.orchestration.runner import NnunetFolders

        os.environ.update(NnunetFolders.under(workspace).environment({}))  # before nnU-Net reads its paths
        _, args.dataset = prepare(workspace, args.quick, max(1, min(8, (os.cpu_count() or 2) - 2)), args.cases)
        if args.plans is None and args.quick:
            from nnunet_progressive.datasets.prepare import SMALL_PLANS

            args.plans = SMALL_PLANS
    args.plans = args.plans or "nnUNetPlans"
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device; this check needs a GPU (use --quick for a CPU smoke test)")
    result = check(args, script_start, workspace)
    write_outputs(result, workspace)
    if (workspace / "gpu_check.md").is_file():
        print((workspace / "gpu_check.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
