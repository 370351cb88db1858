#!/usr/bin/env python
"""GPU check of PGPS on UNETR, SwinUNETR, Primus and the ResEnc U-Net at published sizes (a few minutes).

For every architecture and PGPS mode, each stage of the schedule the trainers use (the pure schedule with the
network's own step rule and, in Performance mode, its memory estimate) runs a few training iterations as nnU-Net's
trainer does (fp16 autocast, gradient scaler, nnU-Net's Dice + CE loss, the recipe's optimiser) on random data, and
records per stage: peak GPU memory (torch.cuda.max_memory_allocated, reset per stage), the activation memory the
estimate predicts, and voxels per second. Writes CSV and PNG.

    python scripts/gpu_check_architectures.py --out gpu_check                      # all, ~5-8 min on one GPU
    python scripts/gpu_check_architectures.py --only swin_unetr --stages all      # every stage of one network
    python scripts/gpu_check_architectures.py --device cpu --tiny --out /tmp/x    # smoke test (tiny networks)

No data loading, no validation: this measures the networks, not the loaders (see the PGPS loader benchmark).
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nnunet_progressive.nnunet.compat import install_in_this_process

install_in_this_process()

from nnunet_progressive.architectures import specs  # noqa: E402
from nnunet_progressive.architectures.input_rules import adjust_patch  # noqa: E402
from nnunet_progressive.architectures.recipes import (  # noqa: E402
    NNUNET_RECIPE,
    PRIMUS_RECIPE,
    SWIN_UNETR_RECIPE,
    UNETR_RECIPE,
)
from nnunet_progressive.architectures.transformer_memory import activations, sample_cost  # noqa: E402
from nnunet_progressive.pgps.schedule import build_schedule  # noqa: E402

RESENC_M_STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 5  # nnU-Net's ResEnc M plan of an isotropic 128^3 patch


@dataclass(frozen=True)
class Case:
    name: str
    spec: object | None  # None: the ResEnc U-Net
    recipe: object
    planned_patch: tuple[int, ...]
    planned_batch: int


def cases(tiny: bool) -> list[Case]:
    if tiny:
        return [Case("unetr", specs.TINY_UNETR, UNETR_RECIPE, (32, 32, 32), 2),
                Case("swin_unetr", specs.TINY_SWIN_UNETR, SWIN_UNETR_RECIPE, (64, 64, 64), 2),
                Case("primus", specs.TINY_PRIMUS, PRIMUS_RECIPE, (32, 32, 32), 2),
                Case("resenc_m", None, NNUNET_RECIPE, (32, 32, 32), 2)]
    # nnU-Net's default 3d_fullres of an isotropic CT task (e.g. abdominal organs): 128^3, batch 2
    return [Case("unetr", specs.UNETR_B, UNETR_RECIPE, (128, 128, 128), 2),
            Case("swin_unetr", specs.SWIN_UNETR_48, SWIN_UNETR_RECIPE, (128, 128, 128), 2),
            Case("primus", specs.PRIMUS_S, PRIMUS_RECIPE, (128, 128, 128), 2),
            Case("resenc_m", None, NNUNET_RECIPE, (128, 128, 128), 2)]


def build(case: Case, in_channels: int, classes: int, tiny: bool) -> torch.nn.Module:
    if case.spec is not None:
        from nnunet_progressive.nnunet.networks.builders import build_network

        return build_network(case.spec, in_channels, classes, case.planned_patch)
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

    features = (4, 8, 16, 32, 32, 32) if tiny else (32, 64, 128, 256, 320, 320)
    strides = RESENC_M_STRIDES[:4] if tiny else RESENC_M_STRIDES
    n = len(strides)
    return ResidualEncoderUNet(in_channels, n, features[:n], torch.nn.Conv3d, 3, strides, (1, 3, 4, 6, 6, 6)[:n],
                               classes, (1,) * (n - 1), conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                               norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                               nonlin_kwargs={"inplace": True}, deep_supervision=False)


def schedule_of(case: Case, mode: str, in_channels: int, classes: int):
    if case.spec is None:
        strides, multiple, cost = RESENC_M_STRIDES[: (4 if case.planned_patch[0] == 32 else 6)], None, None
    else:
        strides, multiple = None, case.spec.rule.per_axis(3)
        cost = sample_cost(case.spec, in_channels, classes) if mode == "performance" else None
    planned = case.planned_patch if case.spec is None else adjust_patch(case.planned_patch, case.spec.rule)
    return build_schedule(planned, strides, case.planned_batch, 1000, mode, max_batch=64, input_multiple=multiple,
                          sample_cost=cost)


def optimizer_of(recipe, network):
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(network.parameters(), recipe.learning_rate, weight_decay=recipe.weight_decay,
                                 betas=recipe.betas)
    return torch.optim.SGD(network.parameters(), recipe.learning_rate, weight_decay=recipe.weight_decay,
                           momentum=0.99, nesterov=True)


def run_stage(network, loss_fn, optimizer, scaler, device, patch, batch, classes, iterations, recipe) -> dict:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    resident = torch.cuda.memory_allocated(device) if cuda else 0  # weights and optimiser state
    data = torch.randn(batch, 1, *patch, device=device)
    target = torch.randint(0, classes, (batch, 1, *patch), device=device)
    seconds = 0.0
    for iteration in range(iterations + 1):  # the first iteration warms up (kernels, allocator) and is not timed
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=cuda):
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
        if cuda:
            torch.cuda.synchronize()
        if iteration:
            seconds += time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if cuda else float("nan")
    return {"peak_memory_gib": peak / 2**30, "peak_above_weights_gib": (peak - resident) / 2**30,
            "voxels_per_second": batch * math.prod(patch) * iterations / max(seconds, 1e-9)}


def pick_stages(schedule, which: str):
    stages = list(schedule.stages)
    if which == "all" or len(stages) <= 8:
        return stages
    step = (len(stages) - 1) / 7
    return [stages[round(i * step)] for i in range(8)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check_architectures", help="output folder (CSV, PNG)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per stage (after one warm-up)")
    parser.add_argument("--stages", choices=("sample", "all"), default="sample", help="8 stages spread over each "
                        "schedule (always the first and the planned one), or all")
    parser.add_argument("--only", default=None, help="comma-separated: unetr,swin_unetr,primus,resenc_m")
    parser.add_argument("--modes", default="efficiency,performance")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and patches (CPU smoke test)")
    parser.add_argument("--classes", type=int, default=3)
    args = parser.parse_args(argv)
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    for case in cases(args.tiny):
        if wanted and case.name not in wanted:
            continue
        for mode in args.modes.split(","):
            schedule = schedule_of(case, mode, 1, args.classes)
            torch.manual_seed(0)
            network = build(case, 1, args.classes, args.tiny).to(device)
            optimizer = optimizer_of(case.recipe, network)
            scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
            loss_fn = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                                     weight_ce=1, weight_dice=1, ignore_label=None,
                                     dice_class=MemoryEfficientSoftDiceLoss)
            for stage in pick_stages(schedule, args.stages):
                try:
                    measured = run_stage(network, loss_fn, optimizer, scaler, device, stage.patch_size,
                                         stage.batch_size, args.classes, args.iterations, case.recipe)
                except torch.OutOfMemoryError:
                    measured = {"peak_memory_gib": float("inf"), "peak_above_weights_gib": float("inf"),
                                "voxels_per_second": 0.0}
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                estimate = (stage.batch_size * activations(case.spec, stage.patch_size, 1, args.classes).bytes(True)
                            / 2**30) if case.spec is not None else float("nan")
                row = {"network": case.name, "mode": mode, "stage": stage.index + 1, "stages": len(schedule.stages),
                       "patch": "x".join(map(str, stage.patch_size)), "batch": stage.batch_size,
                       "estimated_activations_gib": estimate, **measured}
                rows.append(row)
                print(" | ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                      flush=True)
            del network, optimizer
            if device.type == "cuda":
                torch.cuda.empty_cache()
    with open(out / "gpu_check_architectures.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "gpu_check_architectures.png")
    print(f"wrote {out / 'gpu_check_architectures.csv'} and .png")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = sorted({r["network"] for r in rows})
    fig, axes = plt.subplots(2, len(networks), figsize=(4 * len(networks), 7), squeeze=False)
    for column, network in enumerate(networks):
        for mode in ("efficiency", "performance"):
            mine = [r for r in rows if r["network"] == network and r["mode"] == mode]
            if not mine:
                continue
            stages = [r["stage"] for r in mine]
            axes[0][column].plot(stages, [r["peak_above_weights_gib"] for r in mine], marker="o",
                                 label=f"{mode}: peak above weights")
            if mode == "performance" and not math.isnan(mine[0]["estimated_activations_gib"]):
                axes[0][column].plot(stages, [r["estimated_activations_gib"] for r in mine], linestyle="--",
                                     label="estimated activations")
            axes[1][column].plot(stages, [r["voxels_per_second"] / 1e6 for r in mine], marker="o", label=mode)
        axes[0][column].set_title(network)
        axes[0][column].set_ylabel("GiB (weights and optimiser state excluded)")
        axes[1][column].set_ylabel("Mvoxels/s")
        axes[1][column].set_xlabel("PGPS stage")
        axes[0][column].legend(fontsize=7)
        axes[1][column].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
