"""Image similarity between two datasets: a few cases of each, registered and compared (pure).

One implementation with PDL's ranking: the cases go onto one common grid (:func:`.compare.common_grid`, at most
``grid_size`` voxels per axis, true physical sizes), each channel is z-scored inside its body mask (the
``intensity`` score compares intensity scales; this one compares what the images show), then every target case is
registered with every candidate case (:func:`.compare.compare_pair`: rigid, then affine) and compared with SSIM
inside the union of both body masks. The score is the mean SSIM over the pairs, clipped to [0, 1]; every pair's SSIM
and registration outcome is kept.

:func:`scan_quantiles`: the intensity distribution of a whole scan inside the same body mask (the ``intensity``
score's input), in Hounsfield units for CT, z-scored otherwise.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnunet_progressive.pdl.similarity.compare import (
    Thumbnail,
    body_mask,
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
    pairs: tuple[dict, ...] = ()  # per pair: target and candidate case index, ssim, registration_ok, message

    @property
    def mean_ssim(self) -> float | None:
        """The unclipped mean over the pairs (None without pairs)."""
        return float(np.mean(self.pair_ssim)) if self.pair_ssim else None


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
    values, failures, pairs = [], 0, []
    for i, a in enumerate(fixed):
        for j, b in enumerate(moving):
            result = compare_pair(a, b, grid_spacing, ranges, registration, "body")
            values.append(float(result.values["ssim"]))
            failures += not result.registration_ok
            pairs.append({"target_case": i, "candidate_case": j, "ssim": round(values[-1], 4),
                          "registration_ok": bool(result.registration_ok), "message": result.message})
    return ImageSimilarity(float(np.clip(np.mean(values), 0.0, 1.0)), tuple(values), failures, tuple(pairs))


def scan_quantiles(image: np.ndarray, hounsfield: bool, quantiles: Sequence[float],
                   max_voxels: int = 4_000_000) -> tuple[float, ...]:
    """Quantiles of one channel's body voxels (the PDL body mask: Otsu foreground, holes filled), in the
    scanner's units for CT (Hounsfield), else z-scored with the body's mean and standard deviation.

    The whole scan, not only the labelled structures: what the network sees. Scans above ``max_voxels`` are
    read with a stride per axis (the distribution, not the detail, is wanted).
    """
    image = np.asarray(image, dtype=np.float32)
    stride = max(1, int(np.ceil((image.size / max_voxels) ** (1 / image.ndim))))
    view = image[tuple(slice(None, None, stride) for _ in range(image.ndim))]
    inside = view[body_mask(view[None])]
    if not hounsfield:
        std = float(inside.std())
        inside = (inside - float(inside.mean())) / (std if std > 0 else 1.0)
    return tuple(float(v) for v in np.quantile(inside, list(quantiles)))


def dataset_scan_quantiles(cases: Sequence[Case], channel: int, hounsfield: bool,
                           quantiles: Sequence[float]) -> tuple[float, ...]:
    """The mean over ``cases`` of each case's :func:`scan_quantiles` on ``channel`` (quantile averaging)."""
    if not cases:
        raise ValueError("scan quantiles need at least one case")
    per_case = [scan_quantiles(np.asarray(image)[channel], hounsfield, quantiles) for image, _ in cases]
    return tuple(float(v) for v in np.mean(np.asarray(per_case), axis=0))
