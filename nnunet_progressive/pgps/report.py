"""Tables, summaries and plots of a PGPS schedule (pure data in, text/figures out)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from nnunet_progressive.pgps.schedule import Schedule
from nnunet_progressive.pgps.throughput import Throughput, combined


def schedule_table(schedule: Schedule) -> str:
    """A fixed-width table: one row per stage, plus the predicted compute relative to constant patch."""
    header = f"{'stage':>5}  {'patch':<18} {'batch':>5}  {'epochs':>13}  {'voxels/iter':>12}  {'rel. cost':>9}"
    planned_voxels = schedule.planned_batch_size * _prod(schedule.planned_patch_size)
    rows = [header, "-" * len(header)]
    for stage in schedule.stages:
        epochs = f"{stage.first_epoch}-{stage.last_epoch - 1} ({stage.num_epochs})"
        rows.append(
            f"{stage.index + 1:>5}  {'x'.join(map(str, stage.patch_size)):<18} {stage.batch_size:>5}  "
            f"{epochs:>13}  {stage.voxels_per_iteration:>12,}  {stage.voxels_per_iteration / planned_voxels:>9.3f}"
        )
    rows.append("-" * len(header))
    rows.append(
        f"{len(schedule.stages)} stages over {schedule.num_epochs} epochs; predicted compute relative to "
        f"constant patch {'x'.join(map(str, schedule.planned_patch_size))} at batch "
        f"{schedule.planned_batch_size}: {schedule.relative_compute():.3f}"
    )
    return "\n".join(rows)


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def stage_summaries(
    schedule: Schedule,
    epoch_start_times: Sequence[float],
    epoch_end_times: Sequence[float],
    train_seconds: Mapping[int, float],
    iterations_per_epoch: int,
    throughput: Mapping[int, Throughput] | None = None,
) -> list[dict]:
    """Per-stage epochs done, wall time and throughput from per-epoch timings.

    ``epoch_*_times`` are nnU-Net's logged timestamps (index = epoch); ``train_seconds`` maps an epoch to
    the seconds its training iterations took (validation excluded); ``throughput`` (optional) maps an epoch
    to its loader and network counters, summed per stage (see :mod:`nnunet_progressive.pgps.throughput`).
    """
    summaries = []
    for stage in schedule.stages:
        done = [
            e
            for e in range(stage.first_epoch, stage.last_epoch)
            if e < len(epoch_end_times) and e < len(epoch_start_times)
        ]
        wall = sum(epoch_end_times[e] - epoch_start_times[e] for e in done)
        train = sum(train_seconds.get(e, 0.0) for e in done)
        timed = [e for e in done if train_seconds.get(e, 0.0) > 0]
        voxels = stage.voxels_per_iteration * iterations_per_epoch * len(timed)
        summaries.append(
            {
                "stage": stage.index,
                "patch_size": list(stage.patch_size),
                "batch_size": stage.batch_size,
                "first_epoch": stage.first_epoch,
                "last_epoch": stage.last_epoch,
                "epochs_planned": stage.num_epochs,
                "epochs_done": len(done),
                "wall_seconds": round(wall, 3),
                "train_seconds": round(train, 3),
                "voxels_per_second": round(voxels / sum(train_seconds[e] for e in timed), 1) if timed else None,
                **combined(throughput[e] for e in done if throughput and e in throughput).summary(),
            }
        )
    return summaries


def plot_schedule(schedule: Schedule, path: str | os.PathLike, current_epoch: int | None = None) -> None:
    """Patch size (per axis and voxels) and batch size over epochs, written atomically as PNG."""
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    from nnunet_progressive.core.io import atomic_save_figure

    # nnU-Net's progress plot sets a global seaborn style (font_scale 2.5); draw with matplotlib's defaults
    with plt.style.context("default"):
        epochs = list(range(schedule.num_epochs))
        stages = [schedule.stage_at_epoch(e) for e in epochs]
        fig, (ax_patch, ax_batch) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
        for axis in range(len(schedule.planned_patch_size)):
            ax_patch.step(epochs, [s.patch_size[axis] for s in stages], where="post", label=f"patch axis {axis}")
        ax_patch.set_ylabel("patch size (voxels per axis)")
        ax_voxels = ax_patch.twinx()
        ax_voxels.step(epochs, [s.patch_voxels for s in stages], where="post", color="black", ls="--",
                       label="voxels per patch")
        ax_voxels.set_ylabel("voxels per patch")
        lines = ax_patch.get_legend_handles_labels()
        extra = ax_voxels.get_legend_handles_labels()
        ax_patch.legend(lines[0] + extra[0], lines[1] + extra[1], loc="upper left", fontsize=8)
        ax_batch.step(epochs, [s.batch_size for s in stages], where="post", color="tab:red", label="batch size")
        ax_batch.set_ylabel("batch size")
        ax_batch.set_xlabel("epoch")
        ax_batch.set_ylim(bottom=0)
        for ax in (ax_patch, ax_batch):
            for stage in schedule.stages[1:]:
                ax.axvline(stage.first_epoch, color="grey", lw=0.5, alpha=0.5)
            if current_epoch is not None:
                ax.axvline(current_epoch, color="magenta", lw=1.5, ls=":", label="current epoch")
        fig.suptitle(
            f"PGPS schedule: {len(schedule.stages)} stages, predicted compute "
            f"{schedule.relative_compute():.2f} x constant patch"
        )
        fig.tight_layout()
        atomic_save_figure(fig, path, dpi=100)
        plt.close(fig)
