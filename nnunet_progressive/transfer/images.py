"""Image similarity between two datasets: a few cases of each, registered and compared (pure).

One implementation with PDL's ranking: the cases go onto one common grid (:func:`.compare.common_grid`, at most
``grid_size`` voxels per axis, true physical sizes), each channel is z-scored inside its body mask (the
``intensity`` score compares intensity scales; this one compares what the images show), then every target case is
registered with every candidate case (:func:`.compare.compare_pair`: rigid, then affine) and compared with SSIM
inside the union of both body masks. The score is the mean SSIM over the pairs, clipped to [0, 1].
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnunet_progressive.pdl.similarity.compare import (
    Thumbnail,
    channel_data_ranges,
    common_grid,
    compare_pair,
    make_thumbnail,
)

DEFAULT_GRID_SIZE = 48

Case = tuple[np.ndarray, Sequence[float]]  # (image (c, *spatial), spacing in mm, same axis order)


@dataclass(frozen=True)
class ImageSimilarity:
    score: float  # mean SSIM over the pairs, clipped to [0, 1]
    pair_ssim: tuple[float, ...]
    registration_failures: int


def z_scored(thumbnail: Thumbnail) -> Thumbnail:
    """Each channel minus its body-mask mean, over its body-mask standard deviation (1 if that is 0)."""
    image = thumbnail.image.astype(np.float32, copy=True)
    for channel in image:
        inside = channel[thumbnail.body]
        std = float(inside.std()) if inside.size else 0.0
        channel -= float(inside.mean()) if inside.size else 0.0
        channel /= std if std > 0 else 1.0
    return Thumbnail(image=image, body=thumbnail.body)


def dataset_image_similarity(target: Sequence[Case], candidate: Sequence[Case], target_channel: int = 0,
                             candidate_channel: int = 0, grid_size: int = DEFAULT_GRID_SIZE,
                             registration: str = "rigid_affine") -> ImageSimilarity:
    """SSIM of every (target case, candidate case) pair after registration, on one channel of each."""
    if not target or not candidate:
        raise ValueError("image similarity needs at least one case of each dataset")
    cases = [(np.asarray(image)[[target_channel]], spacing) for image, spacing in target]
    cases += [(np.asarray(image)[[candidate_channel]], spacing) for image, spacing in candidate]
    dims = {len(image.shape) - 1 for image, _ in cases}
    if len(dims) != 1:
        return ImageSimilarity(0.0, (), 0)  # 2D against 3D: nothing to register
    grid_shape, grid_spacing = common_grid([image.shape[1:] for image, _ in cases], [s for _, s in cases], grid_size)
    thumbnails = [z_scored(make_thumbnail(image, spacing, grid_shape, grid_spacing)) for image, spacing in cases]
    fixed, moving = thumbnails[:len(target)], thumbnails[len(target):]
    ranges = channel_data_ranges([t.image for t in thumbnails])
    values, failures = [], 0
    for a in fixed:
        for b in moving:
            result = compare_pair(a, b, grid_spacing, ranges, registration, "body")
            values.append(float(result.values["ssim"]))
            failures += not result.registration_ok
    return ImageSimilarity(float(np.clip(np.mean(values), 0.0, 1.0)), tuple(values), failures)
