"""Times nnU-Net 2.8.1's intensity chain per sample (batchgeneratorsv2) against the batched one (issue #21).

The chain is GaussianNoise, GaussianBlur, MultiplicativeBrightness, Contrast, SimulateLowResolution, Gamma
(inverted), Gamma, each in a RandomTransform with nnU-Net's probabilities (``--all`` applies every transform to
every sample instead). One-channel float32 images; milliseconds per batch, median of ``--repeats``.

    python scripts/benchmark_batched_intensity.py --batch-sizes 2 64 --edges 16 64 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast, ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from nnunet_progressive.nnunet.batched_augmentation.base import BatchedCompose, BatchedRandomTransform
from nnunet_progressive.nnunet.batched_augmentation.intensity import (
    BatchedContrast,
    BatchedGamma,
    BatchedGaussianBlur,
    BatchedGaussianNoise,
    BatchedMultiplicativeBrightness,
    BatchedSimulateLowResolution,
)

PROBABILITIES = (0.1, 0.2, 0.15, 0.15, 0.25, 0.1, 0.3)


def per_sample_chain(apply_all: bool) -> ComposeTransforms:
    transforms = [
        GaussianNoiseTransform((0, 0.1), 1, True),
        GaussianBlurTransform((0.5, 1.0), False, False, 0.5, benchmark=True),
        MultiplicativeBrightnessTransform(BGContrast((0.75, 1.25)), False, 1),
        ContrastTransform(BGContrast((0.75, 1.25)), True, False, 1),
        SimulateLowResolutionTransform((0.5, 1), False, True, None, None, 0.5),
        GammaTransform(BGContrast((0.7, 1.5)), 1, False, 1, 1),
        GammaTransform(BGContrast((0.7, 1.5)), 0, False, 1, 1),
    ]
    return ComposeTransforms([RandomTransform(t, 1.0 if apply_all else p) for t, p in zip(transforms, PROBABILITIES)])


def batched_chain(apply_all: bool) -> BatchedCompose:
    transforms = [BatchedGaussianNoise(), BatchedGaussianBlur(), BatchedMultiplicativeBrightness(), BatchedContrast(),
                  BatchedSimulateLowResolution(), BatchedGamma(p_invert_image=1), BatchedGamma(p_invert_image=0)]
    return BatchedCompose([BatchedRandomTransform(t, 1.0 if apply_all else p)
                           for t, p in zip(transforms, PROBABILITIES)])


def median_ms(run, repeats: int) -> float:
    run()  # warm-up (bgv2's blur benchmarks its FFT choice on first use)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 64])
    parser.add_argument("--edges", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--all", action="store_true", help="apply every transform to every sample")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    per_sample, batched = per_sample_chain(args.all), batched_chain(args.all)
    print(f"{'batch':>5} {'edge':>4} {'per-sample ms':>14} {'batched ms':>11} {'speed-up':>8}")
    for edge in args.edges:
        for batch_size in args.batch_sizes:
            images = torch.randn(batch_size, 1, edge, edge, edge)

            def run_per_sample(images=images):
                return torch.stack([per_sample(image=image.clone())["image"] for image in images])

            def run_batched(images=images):
                return batched({"image": images})["image"]

            slow = median_ms(run_per_sample, args.repeats)
            fast = median_ms(run_batched, args.repeats)
            print(f"{batch_size:>5} {edge:>4} {slow:>14.2f} {fast:>11.2f} {slow / fast:>8.2f}")


if __name__ == "__main__":
    main()
