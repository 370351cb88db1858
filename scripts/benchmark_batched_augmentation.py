#!/usr/bin/env python3
"""Time nnU-Net's spatial augmentation (SpatialTransform + MirrorTransform) per sample with batchgeneratorsv2
against the batched version, on one batch as nnU-Net's loader stacks it (initial patch from nnU-Net's
``get_patch_size`` for 30 degrees of rotation).

Two draws: ``nnunet`` (p_rotation = p_scaling = 0.2, most samples are a plain crop) and ``all`` (every sample
rotated and scaled: the worst case). Each timing is the median of ``--repeats`` runs. The CPU figure needs an
idle machine; ``--device cuda`` times the batched path on the GPU (synchronised) next to bgv2 on the CPU.

    python scripts/benchmark_batched_augmentation.py --batches 2 64 --patches 16 64 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _labels(batch: int, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    coarse = torch.randint(-1, 4, (batch, 1, *[max(1, s // 8) for s in shape]), generator=generator)
    return torch.nn.functional.interpolate(coarse.float(), size=shape, mode="nearest").to(torch.int16)


def time_once(batch: int, patch: int, draw: str, device: str, repeats: int) -> dict[str, float]:
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

    from nnunet_progressive.nnunet.batched_augmentation.spatial import BatchedMirror, BatchedSpatialTransform

    rotation = (-np.pi / 6, np.pi / 6)
    patch_size = (patch,) * 3
    initial = tuple(int(s) for s in get_patch_size(patch_size, rotation, rotation, rotation, (0.85, 1.25)))
    p = 0.2 if draw == "nnunet" else 1.0
    kwargs = dict(patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0, p_rotation=p,
                  rotation=rotation, p_scaling=p, scaling=(0.7, 1.4), p_synchronize_scaling_across_axes=1,
                  bg_style_seg_sampling=False, border_mode_seg="constant", padding_value_seg=-1)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 1, *initial, generator=generator)
    seg = _labels(batch, initial, generator)
    reference = [SpatialTransform(patch_size, **kwargs), MirrorTransform((0, 1, 2))]
    ours = [BatchedSpatialTransform(patch_size, **kwargs), BatchedMirror((0, 1, 2))]

    def per_sample() -> None:
        for b in range(batch):
            sample = {"image": image[b], "segmentation": seg[b]}
            for transform in reference:
                sample = transform(**sample)

    on_device = {"image": image.to(device), "segmentation": seg.to(device)}

    def batched() -> None:
        out = on_device
        for transform in ours:
            out = transform(out)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    batched()  # warm-up (base grid cache, kernels)
    timings = {}
    for name, run in (("bgv2_per_sample_cpu", per_sample), (f"batched_{device}", batched)):
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
        timings[name] = statistics.median(seconds)
    return {"initial": initial[0], **timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 64])
    parser.add_argument("--patches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--draws", nargs="+", default=["nnunet", "all"], choices=["nnunet", "all"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (both paths)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    print(f"| batch | patch | initial | draw | bgv2 per sample (CPU, s) | batched ({args.device}, s) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for patch in args.patches:
        for batch in args.batches:
            for draw in args.draws:
                t = time_once(batch, patch, draw, args.device, args.repeats)
                ref, ours = t["bgv2_per_sample_cpu"], t[f"batched_{args.device}"]
                print(f"| {batch} | {patch}^3 | {t['initial']}^3 | {draw} | {ref:.4f} | {ours:.4f} | "
                      f"{ref / ours:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
