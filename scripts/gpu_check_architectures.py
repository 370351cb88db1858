#!/usr/bin/env python
"""GPU check of PGPS per architecture: peak memory of every stage against the planned stage, and voxels per second.

Networks, all at nnU-Net's default 3d_fullres plan of an isotropic CT task (128^3, batch 2):

- ``unet``: nnU-Net's default PlainConvUNet (features 32-320, 6 stages, 2 convs, deep supervision);
- ``resenc_m``: the ResEnc M preset's ResidualEncoderUNet (blocks 1-3-4-6-6-6, deep supervision);
- ``unetr``, ``swin_unetr``: MONAI UNETR-B and SwinUNETR-48 as ``nnUNetTrainer_UNETR`` / ``_SwinUNETR`` build them;
- ``primus``: nnU-Net's Primus-S, embeddings following the stage's token grid (``nnUNet_Primus_S_Trainer_PGPS_*``);
- ``unet_aniso`` (only with ``--only``): the default U-Net at 32x224x224, strides 8x32x32 (a prostate-like plan).

For each PGPS mode (Performance first: its claim is that every stage's batch keeps the planned footprint), the
schedule is the one the trainers build (``schedule_for_configuration`` with the trainer's own patch rule and memory
estimate, the knob defaults and any NNPROG_* variable set), and the network is the one the trainer builds. Each
selected stage (the planned one first, as the reference) runs a warm-up and ``--iterations`` timed training
iterations as nnU-Net's trainer does (fp16 autocast and gradient scaler on CUDA, nnU-Net's Dice + CE loss with its
deep-supervision weights, the recipe's optimiser and clipping) on random data, and records: the peak GPU memory
above what is resident before the stage (weights and optimiser state; ``torch.cuda.max_memory_allocated``, reset
per stage), its ratio to the planned stage's, the activation estimate the package plans with
(``architectures.memory`` for the U-Nets, ``architectures.transformer_memory`` for the transformers) and its ratio,
and voxels per second. cuDNN autotuning is off unless ``--cudnn-benchmark`` (nnU-Net turns it on; each new shape
then costs an autotuning pass).

Results are rewritten after every stage (a run cut short keeps what it measured):
``<out>/gpu_check_architectures.{csv,md,png}``.

    python scripts/gpu_check_architectures.py --out gpu_check                      # about 2-3 min on one H200
    python scripts/gpu_check_architectures.py --only swin_unetr --stages all      # every stage of one network
    python scripts/gpu_check_architectures.py --device cpu --tiny --out /tmp/x    # smoke test (tiny networks)

No data loading, no validation: this measures the networks, not the loaders (``scripts/gpu_check_pgps.py`` does).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from nnunet_progressive.nnunet.compat import install_in_this_process

install_in_this_process()

from nnunet_progressive.architectures import memory as conv_memory  # noqa: E402
from nnunet_progressive.architectures.recipes import (  # noqa: E402
    NNUNET_RECIPE,
    PRIMUS_RECIPE,
    SWIN_UNETR_RECIPE,
    UNETR_RECIPE,
    Recipe,
)
from nnunet_progressive.architectures.specs import (  # noqa: E402
    PRIMUS_S,
    SWIN_UNETR_48,
    TINY_PRIMUS,
    TINY_SWIN_UNETR,
    TINY_UNETR,
    UNETR_B,
)
from nnunet_progressive.architectures.transformer_memory import activations  # noqa: E402
from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text  # noqa: E402

UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
ISO_STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 5
ANISO_STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
FEATURES = [32, 64, 128, 256, 320, 320]
MODES = ("performance", "efficiency")
MODE_SUFFIX = {"efficiency": "PGPS_Efficiency", "performance": "PGPS_Performance"}
DEFAULT_NETWORKS = ("unet", "resenc_m", "unetr", "swin_unetr", "primus")


def architecture(kind: str, strides, features, blocks, decoder_convs) -> dict:
    """A plan's ``architecture`` entry as nnU-Net's planners write it (nnU-Net >= 2.4 format)."""
    stages = len(strides)
    blocks_key = "n_conv_per_stage" if kind == UNET else "n_blocks_per_stage"
    return {
        "network_class_name": kind,
        "arch_kwargs": {
            "n_stages": stages, "features_per_stage": list(features[:stages]),
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * stages,
            "strides": [list(s) for s in strides], blocks_key: list(blocks[:stages]),
            "n_conv_per_stage_decoder": list(decoder_convs[:stages - 1]), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def default_unet(strides=ISO_STRIDES, features=FEATURES) -> dict:
    return architecture(UNET, strides, features, [2] * 6, [2] * 5)


def resenc_m(strides=ISO_STRIDES, features=FEATURES) -> dict:
    return architecture(RESENC, strides, features, [1, 3, 4, 6, 6, 6], [1] * 5)


@dataclass(frozen=True)
class Case:
    """One network as a trainer trains it on a plan: the trainer family, the plan's configuration, the recipe."""

    name: str
    trainer_prefix: str  # + "_PGPS_Efficiency" / "_PGPS_Performance"
    configuration: dict  # the plan's configuration entry (patch, batch, architecture)
    recipe: Recipe
    spec: object | None = None  # the transformer's spec (memory estimate); None: a U-Net of the plan

    @property
    def planned_patch(self) -> tuple[int, ...]:
        return tuple(self.configuration["patch_size"])


def configuration(patch, batch: int, arch: dict) -> dict:
    return {"patch_size": list(patch), "batch_size": batch, "architecture": arch, "batch_dice": True}


def cases(tiny: bool) -> list[Case]:
    if tiny:
        small = [[1, 1, 1]] + [[2, 2, 2]] * 3
        features = [4, 8, 16, 32]
        plan = configuration((32, 32, 32), 2, default_unet(small, features))
        return [Case("unet", "nnUNetTrainer", plan, NNUNET_RECIPE),
                Case("resenc_m", "nnUNetTrainer", configuration((32, 32, 32), 2, resenc_m(small, features)),
                     NNUNET_RECIPE),
                Case("unetr", "nnUNetTrainer_TinyUNETR", plan, UNETR_RECIPE, TINY_UNETR),
                Case("swin_unetr", "nnUNetTrainer_TinySwinUNETR", configuration((64, 32, 32), 2, plan["architecture"]),
                     SWIN_UNETR_RECIPE, TINY_SWIN_UNETR),
                Case("primus", "nnUNetTrainer_TinyPrimus", plan, PRIMUS_RECIPE, TINY_PRIMUS),
                Case("unet_aniso", "nnUNetTrainer", configuration((16, 32, 32), 2, default_unet(
                    [[1, 1, 1], [1, 2, 2], [2, 2, 2], [1, 2, 2]], features)), NNUNET_RECIPE)]
    # nnU-Net's default 3d_fullres of an isotropic CT task (e.g. abdominal organs): 128^3, batch 2
    plan = configuration((128, 128, 128), 2, default_unet())
    return [Case("unet", "nnUNetTrainer", plan, NNUNET_RECIPE),
            Case("resenc_m", "nnUNetTrainer", configuration((128, 128, 128), 2, resenc_m()), NNUNET_RECIPE),
            Case("unetr", "nnUNetTrainer_UNETR", plan, UNETR_RECIPE, UNETR_B),
            Case("swin_unetr", "nnUNetTrainer_SwinUNETR", plan, SWIN_UNETR_RECIPE, SWIN_UNETR_48),
            Case("primus", "nnUNet_Primus_S_Trainer", plan, PRIMUS_RECIPE, PRIMUS_S),
            Case("unet_aniso", "nnUNetTrainer", configuration((32, 224, 224), 2, default_unet(ANISO_STRIDES)),
                 NNUNET_RECIPE)]


_TRAINER_CLASSES: dict[str, type] = {}


def trainer_class(case: Case, mode: str) -> type:
    """The trainer class, found once (nnU-Net's search imports the trainer modules anew each time)."""
    from nnunet_progressive.nnunet.orchestration.discovery import find_trainer_class

    name = f"{case.trainer_prefix}_{MODE_SUFFIX[mode]}"
    if name not in _TRAINER_CLASSES:
        _TRAINER_CLASSES[name] = find_trainer_class(name)
    return _TRAINER_CLASSES[name]


def schedule_of(case: Case, mode: str, trainer: type, classes: int):
    """The schedule the trainer builds for this plan (its patch rule, the knob defaults, NNPROG_* applied)."""
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    from nnunet_progressive.core.knobs import settings_from_env
    from nnunet_progressive.nnunet.hooks.pgps import NNUNET_DEFAULT_EPOCHS, schedule_for_configuration

    manager = ConfigurationManager(case.configuration)
    rule = trainer.network_patch_rule(manager, 1, classes)
    return schedule_for_configuration(manager, mode, settings_from_env(), NNUNET_DEFAULT_EPOCHS, rule)


def build(case: Case, trainer: type, planned_patch, classes: int) -> torch.nn.Module:
    """The network as the trainer builds it (its ``build_network_architecture``, the adjusted planned patch)."""
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    manager = ConfigurationManager({**case.configuration, "patch_size": list(planned_patch)})
    return trainer.build_network_architecture(None, manager, 1, classes, case.recipe.deep_supervision)


def deep_supervision_scales(case: Case) -> list[tuple[int, ...]] | None:
    """nnU-Net's ``_get_deep_supervision_scales`` as integer strides (None: no deep supervision)."""
    if not case.recipe.deep_supervision:
        return None
    strides = case.configuration["architecture"]["arch_kwargs"]["strides"]
    scales, current = [], [1, 1, 1]
    for stride in strides[:-1]:
        current = [c * int(s) for c, s in zip(current, stride, strict=True)]
        scales.append(tuple(current))
    return scales


def loss_of(case: Case):
    """nnU-Net's loss (``nnUNetTrainer._build_loss``, single process, no regions, no ignore label)."""
    import numpy as np
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    scales = deep_supervision_scales(case)
    if scales is None:
        return loss
    weights = np.array([1 / (2**i) for i in range(len(scales))])
    weights[-1] = 0
    return DeepSupervisionWrapper(loss, weights / weights.sum())


def optimizer_of(recipe: Recipe, network: torch.nn.Module):
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(network.parameters(), recipe.learning_rate, weight_decay=recipe.weight_decay,
                                 betas=recipe.betas, eps=recipe.eps)
    return torch.optim.SGD(network.parameters(), recipe.learning_rate, weight_decay=recipe.weight_decay,
                           momentum=0.99, nesterov=True)


def random_batch(case: Case, patch, batch: int, classes: int, device: torch.device):
    """Random data and labels; labels at every deep-supervision resolution as nnU-Net's loader delivers them."""
    data = torch.randn(batch, 1, *patch, device=device)
    target = torch.randint(0, classes, (batch, 1, *patch), device=device, dtype=torch.int16)
    scales = deep_supervision_scales(case)
    if scales is None:
        return data, target
    return data, [target[:, :, ::s[0], ::s[1], ::s[2]].contiguous() for s in scales]


def train_iteration(network, loss_fn, optimizer, scaler, device, data, target, recipe: Recipe) -> None:
    """One training step as nnU-Net's trainer (and the recipe trainers) take it."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, enabled=device.type == "cuda" and recipe.mixed_precision):
        loss = loss_fn(network(data), target)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(network.parameters(), recipe.grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(network.parameters(), recipe.grad_clip)
        optimizer.step()


def prime_optimizer(case, network, loss_fn, optimizer, device, patch, classes) -> None:
    """One fp32 step at the smallest patch (batch 1) so the optimiser state exists before any stage is measured."""
    data, target = random_batch(case, patch, 1, classes, device)
    optimizer.zero_grad(set_to_none=True)
    loss_fn(network(data), target).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_stage(case, network, loss_fn, optimizer, scaler, device, patch, batch, classes, iterations) -> dict:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    resident = torch.cuda.memory_allocated(device) if cuda else 0  # weights and optimiser state
    data, target = random_batch(case, patch, batch, classes, device)
    seconds = 0.0
    for iteration in range(iterations + 1):  # the first iteration warms up (kernels, allocator) and is not timed
        start = time.perf_counter()
        train_iteration(network, loss_fn, optimizer, scaler, device, data, target, case.recipe)
        if cuda:
            torch.cuda.synchronize(device)
        if iteration:
            seconds += time.perf_counter() - start
    optimizer.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated(device) if cuda else float("nan")
    return {"resident_gib": resident / 2**30 if cuda else float("nan"), "peak_memory_gib": peak / 2**30,
            "peak_above_resident_gib": (peak - resident) / 2**30,
            "seconds_per_iteration": seconds / max(iterations, 1),
            "voxels_per_second": batch * math.prod(patch) * iterations / max(seconds, 1e-9)}


def pick_stages(stages: list, which: str) -> list:
    """The planned (last) stage first, then ``which``: all, or N stages spread over the schedule (always the first)."""
    count = len(stages) if which == "all" else int(which)
    if count >= len(stages):
        chosen = list(stages)
    else:
        step = (len(stages) - 1) / max(count - 1, 1)
        chosen = list({stages[round(i * step)].index: stages[round(i * step)] for i in range(count)}.values())
    planned = stages[-1]
    return [planned] + [s for s in chosen if s.index != planned.index]


def estimate_bytes(case: Case, patch, batch: int, classes: int, cuda: bool) -> float:
    """The activations the package's estimate predicts for ``batch`` samples at ``patch``."""
    if case.spec is not None:
        return batch * activations(case.spec, patch, 1, classes).bytes(mixed_precision=cuda)
    network = conv_memory.conv_unet_from_plan(case.configuration["architecture"], 1)
    element = conv_memory.BYTES_FLOAT16 if cuda else conv_memory.BYTES_FLOAT32
    return float(conv_memory.activation_bytes(network, patch, batch, element))


COLUMNS = ["network", "trainer", "mode", "stage", "stages", "patch", "batch", "voxels_per_iteration", "parameters_m",
           "resident_gib", "peak_memory_gib", "peak_above_resident_gib", "peak_vs_planned",
           "estimated_activations_gib", "estimate_vs_planned", "seconds_per_iteration", "voxels_per_second",
           "voxels_per_second_vs_planned", "note"]


def write_csv(rows: list[dict], path: Path) -> None:
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, handle.getvalue())


def summary_markdown(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "Peak above resident: `torch.cuda.max_memory_allocated` during the stage's iterations minus the memory "
             "resident before it (weights, optimiser state). Ratios are to the planned (last) stage of the same "
             "network and mode.", "",
             "| network | mode | stages measured / total | planned patch x batch | planned peak GiB | peak / planned "
             "(min-max) | estimate / planned (min-max) | Mvox/s planned | Mvox/s (min-max) | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def span(values):
        values = [v for v in values if isinstance(v, float) and math.isfinite(v)]
        return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"

    for key in dict.fromkeys((r["network"], r["mode"]) for r in rows):
        mine = [r for r in rows if (r["network"], r["mode"]) == key]
        planned = mine[0]
        notes = sorted({r["note"] for r in mine if r["note"]})
        peak = planned["peak_above_resident_gib"]
        lines.append(
            f"| {key[0]} | {key[1]} | {len(mine)} / {planned['stages']} | {planned['patch']} x {planned['batch']} | "
            f"{peak:.2f} | {span([r['peak_vs_planned'] for r in mine])} | "
            f"{span([r['estimate_vs_planned'] for r in mine])} | {planned['voxels_per_second'] / 1e6:.2f} | "
            f"{span([r['voxels_per_second'] / 1e6 for r in mine])} | {'; '.join(notes)} |")
    lines += ["", "| network | mode | stage | patch | batch | peak above resident GiB | peak / planned | estimate GiB "
              "| estimate / planned | s/iteration | Mvox/s | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["network"], r["mode"], r["stage"])):
        lines.append(f"| {r['network']} | {r['mode']} | {r['stage']}/{r['stages']} | {r['patch']} | {r['batch']} | "
                     f"{r['peak_above_resident_gib']:.3f} | {r['peak_vs_planned']:.3f} | "
                     f"{r['estimated_activations_gib']:.3f} | {r['estimate_vs_planned']:.3f} | "
                     f"{r['seconds_per_iteration']:.3f} | {r['voxels_per_second'] / 1e6:.2f} | {r['note']} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = list(dict.fromkeys(r["network"] for r in rows))
    with plt.style.context("default"):
        fig, axes = plt.subplots(2, len(networks), figsize=(4 * len(networks), 7), squeeze=False)
        for column, network in enumerate(networks):
            for mode, color in zip(MODES, ("tab:red", "tab:blue"), strict=True):
                mine = sorted((r for r in rows if r["network"] == network and r["mode"] == mode),
                              key=lambda r: r["stage"])
                if not mine:
                    continue
                stages = [r["stage"] for r in mine]
                measured = [r["peak_vs_planned"] for r in mine]
                if any(math.isfinite(v) for v in measured):
                    axes[0][column].plot(stages, measured, "o-", color=color, label=f"{mode}: measured peak")
                axes[0][column].plot(stages, [r["estimate_vs_planned"] for r in mine], "x--", color=color,
                                     label=f"{mode}: estimate")
                axes[1][column].plot(stages, [r["voxels_per_second"] / 1e6 for r in mine], "o-", color=color,
                                     label=mode)
            axes[0][column].axhline(1.0, color="gray", linewidth=0.8)
            axes[0][column].set_title(network)
            axes[0][column].set_ylabel("memory / planned stage's")
            axes[0][column].set_ylim(bottom=0)
            axes[1][column].set_ylabel("Mvoxels/s")
            axes[1][column].set_xlabel("PGPS stage")
            axes[0][column].legend(fontsize=7)
            axes[1][column].legend(fontsize=7)
        fig.tight_layout()
        atomic_save_figure(fig, path, dpi=100)
        plt.close(fig)


def measure_pass(case: Case, mode: str, args, device: torch.device, started: float, rows: list[dict],
                 out: Path) -> None:
    """The selected stages of one network's schedule in one mode; appends a row per stage and rewrites the CSV."""
    if args.budget_seconds is not None and time.perf_counter() - started > args.budget_seconds:
        print(f"time budget of {args.budget_seconds:.0f} s spent: {case.name} {mode} not run", flush=True)
        return
    trainer = trainer_class(case, mode)
    schedule = schedule_of(case, mode, trainer, args.classes)
    planned = schedule.stages[-1]
    torch.manual_seed(0)
    network = build(case, trainer, planned.patch_size, args.classes).to(device)
    network.train()
    optimizer = optimizer_of(case.recipe, network)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and case.recipe.mixed_precision else None
    loss_fn = loss_of(case)
    prime_optimizer(case, network, loss_fn, optimizer, device, schedule.stages[0].patch_size, args.classes)
    parameters = sum(p.numel() for p in network.parameters()) / 1e6
    reference = None
    for stage in pick_stages(list(schedule.stages), args.stages):
        if args.budget_seconds is not None and time.perf_counter() - started > args.budget_seconds:
            print(f"time budget of {args.budget_seconds:.0f} s spent: {case.name} {mode} stage "
                  f"{stage.index + 1} and later ones not run", flush=True)
            break
        note = ""
        try:
            measured = run_stage(case, network, loss_fn, optimizer, scaler, device, stage.patch_size,
                                 stage.batch_size, args.classes, args.iterations)
        except torch.cuda.OutOfMemoryError:
            note = "out of memory"
            measured = {"resident_gib": float("nan"), "peak_memory_gib": float("inf"),
                        "peak_above_resident_gib": float("inf"), "seconds_per_iteration": float("nan"),
                        "voxels_per_second": 0.0}
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        estimate = estimate_bytes(case, stage.patch_size, stage.batch_size, args.classes,
                                  device.type == "cuda") / 2**30
        if reference is None:
            reference = {"peak": measured["peak_above_resident_gib"], "estimate": estimate,
                         "rate": measured["voxels_per_second"]}
        finite_peak = reference["peak"] and math.isfinite(reference["peak"])
        row = {"network": case.name, "trainer": trainer.__name__, "mode": mode, "stage": stage.index + 1,
               "stages": len(schedule.stages), "patch": "x".join(map(str, stage.patch_size)),
               "batch": stage.batch_size, "voxels_per_iteration": stage.voxels_per_iteration,
               "parameters_m": round(parameters, 2), **measured,
               "peak_vs_planned": measured["peak_above_resident_gib"] / reference["peak"] if finite_peak
               else float("nan"),
               "estimated_activations_gib": estimate, "estimate_vs_planned": estimate / reference["estimate"],
               "voxels_per_second_vs_planned": measured["voxels_per_second"] / reference["rate"]
               if reference["rate"] else float("nan"), "note": note}
        rows.append(row)
        print(" | ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                         if k != "trainer"), flush=True)
        write_csv(rows, out / "gpu_check_architectures.csv")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check_architectures"), help="output folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per stage (after one warm-up)")
    parser.add_argument("--stages", default="8", help="stages per schedule: N spread over it (always the first and "
                        "the planned one), or 'all'")
    parser.add_argument("--only", default=None, help="comma-separated, in this order: unet,resenc_m,unetr,"
                        "swin_unetr,primus,unet_aniso (default: all but unet_aniso)")
    parser.add_argument("--modes", default="performance,efficiency")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and patches (CPU smoke test)")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--budget-seconds", type=float, default=None, help="start no stage after this many seconds")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="cuDNN autotuning per shape (as nnU-Net)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; this check needs a GPU (use --device cpu --tiny for a smoke test)")
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.only.split(",") if args.only else list(DEFAULT_NETWORKS)
    chosen = [c for name in wanted for c in cases(args.tiny) if c.name == name]
    modes = [m for m in args.modes.split(",") if m]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    header = (f"PGPS per architecture on {gpu}, torch {torch.__version__}, {args.iterations} timed iterations per "
              f"stage, cuDNN benchmark {'on' if args.cudnn_benchmark else 'off'}, classes {args.classes}")
    print(header, flush=True)
    started = time.perf_counter()
    rows: list[dict] = []
    failures: list[str] = []
    for mode in modes:  # every trainer class found before any GPU work (nnU-Net's search imports modules anew)
        for case in chosen:
            with contextlib.suppress(Exception):
                trainer_class(case, mode)
    for mode in modes:  # Performance first: its memory claim matters most
        for case in chosen:
            try:
                measure_pass(case, mode, args, device, started, rows, out)
            except Exception as error:  # one network's failure must not cost the others' measurements
                traceback.print_exc()
                failures.append(f"{case.name} {mode}: {type(error).__name__}: {error}")
                print(f"FAILED {failures[-1]}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if rows or failures:
                text = header + "".join(f"\n\nFAILED {f}" for f in failures)
                atomic_write_text(out / "gpu_check_architectures.md", summary_markdown(rows, text) if rows else text)
            if rows:
                plot(rows, out / "gpu_check_architectures.png")
    if not rows:
        print("nothing measured", flush=True)
        return 1
    print(summary_markdown(rows, header), flush=True)
    if failures:
        print("\n".join(f"FAILED {f}" for f in failures), flush=True)
    print(f"wrote {out / 'gpu_check_architectures.csv'}, .md and .png in {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
