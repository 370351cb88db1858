"""The ideal compute (voxels processed relative to constant planned patch) of each growth order and smallest patch,
for a plan, with the package's pure schedule code: the README's "departures" table (python
scripts/growth_order_compute.py; defaults: the 80x192x160 plan of nnU-Net's default U-Net, strides 16x32x32, batch 2,
1000 epochs).

The published 2025 code starts at a 1x1x1 bottleneck, which this package refuses (instance norm cannot train on one
voxel); that row prepends the 1x1x1-bottleneck stage to the schedule that starts one stride later on the first axis,
which is where the 2025 order goes next from it (its grown size there is the smallest), and says so.
"""
from __future__ import annotations

import argparse
import math

from nnunet_progressive.pgps.schedule import (
    Schedule,
    Stage,
    build_schedule,
    network_strides,
    patch_sequence,
    performance_batch_sizes,
    smallest_patch,
    split_epochs,
)


def schedule_from(patches: list[tuple[int, ...]], planned_batch: int, epochs: int, mode: str) -> Schedule:
    """A schedule over the given patch sequence (the package's epoch split and Performance batch rule)."""
    batches = ([planned_batch] * len(patches) if mode == "efficiency" else
               performance_batch_sizes(patches, planned_batch))
    stages, first = [], 0
    for index, (patch, batch, n) in enumerate(zip(patches, batches, split_epochs(epochs, len(patches)), strict=True)):
        stages.append(Stage(index, patch, batch, first, first + n))
        first += n
    return Schedule(tuple(stages), patches[-1], planned_batch, epochs)


def rows(planned: tuple[int, ...], pooling: list[list[int]], planned_batch: int, epochs: int) -> list[tuple]:
    strides = network_strides(pooling)
    ours = smallest_patch(planned, strides)
    published_2024 = tuple(s * (2 if axis == 0 else 1) for axis, s in enumerate(strides))
    one_voxel = tuple(strides)
    result = []
    for label, start, order in (("here (default)", ours, "ratio"), ("here, 2025 order", ours, "smallest"),
                                ("here, 2024 order", ours, "round_robin"),
                                ("2024 code: its smallest patch and order", published_2024, "round_robin")):
        for mode in ("efficiency", "performance"):
            schedule = build_schedule(planned, pooling, planned_batch, epochs, mode=mode, min_patch=start,
                                      growth_order=order)
            result.append((label, start, order, mode, len(schedule.stages), schedule.relative_compute()))
    after_first = tuple(s * (2 if axis == 0 else 1) for axis, s in enumerate(one_voxel))
    grown = [min(one_voxel[a] + strides[a], planned[a]) for a in range(len(planned))]
    assert min(range(len(planned)), key=lambda a: (grown[a], a)) == 0, "the 2025 order grows axis 0 first here"
    patches = [one_voxel] + patch_sequence(planned, strides, after_first, "smallest")
    for mode in ("efficiency", "performance"):
        schedule = schedule_from(patches, planned_batch, epochs, mode)
        result.append(("2025 code: its smallest patch (1x1x1 bottleneck) and order", one_voxel, "smallest", mode,
                       len(schedule.stages), schedule.relative_compute()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", default="80,192,160")
    parser.add_argument("--strides", default="1,1,1;2,2,2;2,2,2;2,2,2;2,2,2;1,2,2",
                        help="per-stage pooling strides, stages separated by ';'")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1000)
    args = parser.parse_args()
    planned = tuple(int(p) for p in args.patch.split(","))
    pooling = [[int(s) for s in stage.split(",")] for stage in args.strides.split(";")]
    print(f"plan {'x'.join(map(str, planned))}, strides {'x'.join(map(str, network_strides(pooling)))}, batch "
          f"{args.batch}, {args.epochs} epochs; planned patch voxels {math.prod(planned):,}\n")
    print("| schedule | smallest patch | order | mode | stages | ideal compute |")
    print("|---|---|---|---|---|---|")
    for label, start, order, mode, stages, compute in rows(planned, pooling, args.batch, args.epochs):
        print(f"| {label} | {'x'.join(map(str, start))} | `{order}` | {mode} | {stages} | {compute:.3f} |")


if __name__ == "__main__":
    main()
