#!/usr/bin/env python3
"""Activation footprint per PGPS stage of nnU-Net's default networks (pure arithmetic, no GPU, seconds).

For each plan, the activations the planned network keeps for backward at every stage
(``nnunet_progressive.architectures.memory``, equal to torch's saved-tensor accounting in tests/test_memory.py),
in float16 as nnU-Net trains on CUDA, for Efficiency (planned batch), Performance (voxel budget, no cap, as
published) and Performance with a batch cap of 64 (this package's former default):

- ``unet128``: nnU-Net's default 3d_fullres U-Net at 128^3, batch 2 (features 32-320, 6 stages, 2 convs);
- ``resenc_m``: the ResEnc M preset's network at 128^3, batch 2 (blocks 1-3-4-6-6-6, 1 decoder conv);
- ``aniso``: a default U-Net at 32x224x224, batch 2, strides 8x32x32 (a prostate-like plan).

With ``--dataset D --configuration C [--plans P]`` it uses a planned dataset's network instead. Writes
``<out>/memory_footprint.{csv,md,png}``.

    python scripts/memory_footprint.py --out docs/figures
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from nnunet_progressive.architectures.memory import BYTES_FLOAT16, activation_bytes, conv_unet_from_plan
from nnunet_progressive.pgps.schedule import build_schedule

UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
ISO_STRIDES = [[1, 1, 1]] + [[2, 2, 2]] * 5
ANISO_STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
FEATURES = [32, 64, 128, 256, 320, 320]

EXAMPLES = {
    "unet128": ((128, 128, 128), 2, {"network_class_name": UNET, "arch_kwargs": {
        "n_stages": 6, "features_per_stage": FEATURES, "strides": ISO_STRIDES, "n_conv_per_stage": [2] * 6,
        "n_conv_per_stage_decoder": [2] * 5}}),
    "resenc_m": ((128, 128, 128), 2, {"network_class_name": RESENC, "arch_kwargs": {
        "n_stages": 6, "features_per_stage": FEATURES, "strides": ISO_STRIDES,
        "n_blocks_per_stage": [1, 3, 4, 6, 6, 6], "n_conv_per_stage_decoder": [1] * 5}}),
    "aniso": ((32, 224, 224), 2, {"network_class_name": UNET, "arch_kwargs": {
        "n_stages": 6, "features_per_stage": FEATURES, "strides": ANISO_STRIDES, "n_conv_per_stage": [2] * 6,
        "n_conv_per_stage_decoder": [2] * 5}}),
}
MODES = (("Efficiency", "efficiency", None), ("Performance", "performance", None),
         ("Performance, cap 64", "performance", 64))


def footprints(name: str, patch, batch: int, architecture: dict, channels: int = 1) -> list[dict]:
    network = conv_unet_from_plan(architecture, channels)
    strides = architecture["arch_kwargs"]["strides"]
    planned = activation_bytes(network, patch, batch, BYTES_FLOAT16)
    rows = []
    for label, mode, cap in MODES:
        schedule = build_schedule(patch, strides, batch, 1000, mode=mode, max_batch=cap)
        for stage in schedule.stages:
            size = activation_bytes(network, stage.patch_size, stage.batch_size, BYTES_FLOAT16)
            rows.append({"plan": name, "mode": label, "stage": stage.index,
                         "patch": "x".join(map(str, stage.patch_size)), "batch": stage.batch_size,
                         "activation_gib": round(size / 2**30, 4), "relative_to_planned": round(size / planned, 4),
                         "relative_compute": round(schedule.relative_compute(), 4)})
    return rows


def write_outputs(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from nnunet_progressive.core.io import atomic_save_figure, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "memory_footprint.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plans = list(dict.fromkeys(r["plan"] for r in rows))
    lines = ["| plan | mode | stages | activations GiB, planned | largest stage / planned | predicted compute |",
             "|---|---|---|---|---|---|"]
    for plan in plans:
        for label, _, _ in MODES:
            picked = [r for r in rows if r["plan"] == plan and r["mode"] == label]
            lines.append(f"| {plan} | {label} | {len(picked)} | {picked[-1]['activation_gib']:.2f} | "
                         f"{max(r['relative_to_planned'] for r in picked):.3f} | {picked[0]['relative_compute']:.3f} |")
    atomic_write_text(out / "memory_footprint.md", "\n".join(lines) + "\n")
    with plt.style.context("default"):
        fig, axes = plt.subplots(1, len(plans), figsize=(5.5 * len(plans), 4), squeeze=False)
        for ax, plan in zip(axes[0], plans):
            for (label, _, _), style in zip(MODES, ("o-", "s-", "x--")):
                picked = [r for r in rows if r["plan"] == plan and r["mode"] == label]
                ax.plot([r["stage"] for r in picked], [r["activation_gib"] for r in picked], style, ms=4,
                        label=f"{label} (compute {picked[0]['relative_compute']:.2f})")
            first = [r for r in rows if r["plan"] == plan][-1]
            ax.set_title(f"{plan}: {first['patch']} x {first['batch']}")
            ax.set_xlabel("PGPS stage")
            ax.set_ylabel("activations kept for backward (GiB, float16)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_save_figure(fig, out / "memory_footprint.png", dpi=100)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", default=None, help="a planned dataset instead of the examples")
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--plans", default="nnUNetPlans")
    args = parser.parse_args(argv)
    if args.dataset is None:
        rows = [row for name, (patch, batch, arch) in EXAMPLES.items() for row in footprints(name, patch, batch, arch)]
    else:
        from nnunet_progressive.nnunet.resolve import resolve_configuration

        planned = resolve_configuration(args.dataset, args.configuration, args.plans)
        plans = json.loads(planned.plans_file.read_text())
        configuration = plans["configurations"][args.configuration]
        channels = len(json.loads((planned.preprocessed_dataset_folder / "dataset.json").read_text())["channel_names"])
        rows = footprints(f"{planned.dataset_name} {args.configuration}", configuration["patch_size"],
                          configuration["batch_size"], configuration["architecture"], channels)
    write_outputs(rows, args.out)
    print((args.out / "memory_footprint.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
